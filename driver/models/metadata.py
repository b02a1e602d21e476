"""The runner metadata a model source puts in its program: what ExecuTorch's LLM runner
reads back from the ``.pte`` as constant methods.

The Llama sources write the keys export_llama's ``_load_llama_model_metadata`` writes
(``get_max_seq_len``, ...). ``get_bos_id`` and ``get_eos_ids`` come from the model's own
files (a Hugging Face directory's generation_config.json / config.json, params.json's
``bos_idx``/``eos_idx``); without them the runner falls back to the tokenizer's, which
for e.g. Llama-3-Instruct is not the turn's end, so generation never stops.
``--metadata JSON`` adds or overrides keys the way export_llama's ``-m/--metadata`` does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from pteflow.ir.errors import ModelError


def runner_ids(bos: Any, eos: Any) -> dict[str, Any]:
    """``get_bos_id`` / ``get_eos_ids`` for the ids given (an int, a list, or None)."""
    out: dict[str, Any] = {}
    if isinstance(bos, list):
        bos = bos[0] if bos else None
    if _is_id(bos):
        out["get_bos_id"] = bos
    eos_ids = eos if isinstance(eos, list) else [eos]
    eos_ids = [e for e in eos_ids if _is_id(e)]
    if eos_ids:
        out["get_eos_ids"] = list(dict.fromkeys(eos_ids))
    return out


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_metadata(text: str) -> dict[str, Any]:
    """``--metadata``'s JSON object of constant methods.

    Raises:
        ModelError: not JSON, not an object, a key starting with ``_`` (pteflow's own), or
            a value that is not a bool, number, string or a non-empty list of one of them.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelError(
            f"--metadata: not valid JSON ({e.msg} at column {e.colno}); give an object such "
            'as \'{"get_bos_id": 1, "get_eos_ids": [2, 3]}\''
        ) from None
    if not isinstance(data, dict):
        raise ModelError(f"--metadata: expected a JSON object, got a JSON {type(data).__name__}")
    for key, value in data.items():
        if key.startswith("_") or not key:
            raise ModelError(f"--metadata: key {key!r} cannot be a method name of the .pte")
        if not _plain(value):
            raise ModelError(
                f"--metadata: {key} is {value!r}; a value must be a bool, a number, a string "
                "or a non-empty list of one kind of them"
            )
    return data


def _plain(value: Any) -> bool:
    if isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list) and value:
        kinds = {bool if isinstance(v, bool) else type(v) for v in value}
        return len(kinds) == 1 and kinds <= {bool, int, float, str}
    return False


def with_metadata(model: Any, extra: Mapping[str, Any]) -> Any:
    """The LoadedModel with ``extra`` added to (or overriding) its program's metadata."""
    if not extra:
        return model
    program = model.program.evolve(metadata={**model.program.metadata, **extra})
    return attrs.evolve(model, program=program)
