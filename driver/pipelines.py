"""Pipelines as data: TOML files naming passes and their options.

    description = "fp32 Llama, KV cache, custom SDPA, XNNPACK"
    model = "tiny-llama"          # default model source (optional)
    tolerance = 1e-4              # max abs logit difference --verify accepts
    verify = true                 # --verify on by default

    [[passes]]
    name = "export"

    [[passes]]
    name = "to-edge"
    skip_dim_order = true         # every other key is an option of the pass

The order in the file does not decide the run order (the manager does);
it only breaks ties and orders the ``ordered`` passes (partitioners).
Named pipelines ship in ``pteflow/backends/pipelines/``.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import attrs

from pteflow.ir.errors import UnknownNameError, UserError

from .spec import PassSpec

_KEYS = {"description", "model", "tolerance", "verify", "passes"}


@attrs.frozen
class Pipeline:
    name: str
    description: str
    passes: tuple[PassSpec, ...]
    model: str | None = None
    tolerance: float = 1e-4
    verify: bool = True


def _named_dir() -> resources.abc.Traversable:
    return resources.files("pteflow.backends") / "pipelines"


def named_pipelines() -> dict[str, str]:
    """Name -> description of every pipeline that ships with pteflow."""
    out = {}
    for entry in sorted(_named_dir().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            out[entry.name[:-5]] = parse(entry.read_text(), entry.name[:-5]).description
    return out


def parse(text: str, name: str) -> Pipeline:
    """Read a pipeline from TOML text; ``name`` is used in messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"pipeline {name}: not valid TOML: {e}") from None
    unknown = set(data) - _KEYS
    if unknown:
        raise UnknownNameError(f"key in pipeline {name}", sorted(unknown)[0], _KEYS)
    raw = data.get("passes")
    if not isinstance(raw, list) or not raw:
        raise UserError(f"pipeline {name}: needs a non-empty [[passes]] list")
    specs = []
    for i, entry in enumerate(raw, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise UserError(f'pipeline {name}: pass #{i} needs a name = "..."')
        options = {k: v for k, v in entry.items() if k != "name"}
        specs.append(PassSpec(entry["name"], options))
    return Pipeline(
        name=name,
        description=str(data.get("description", "")),
        passes=tuple(specs),
        model=data.get("model"),
        tolerance=float(data.get("tolerance", 1e-4)),
        verify=bool(data.get("verify", True)),
    )


def load(name_or_path: str) -> Pipeline:
    """A named pipeline, or a pipeline file (any name ending in .toml).

    Raises:
        UnknownNameError: no such named pipeline (closest names listed).
        UserError: the file is missing, unreadable or malformed.
    """
    if name_or_path.endswith(".toml"):
        path = Path(name_or_path)
        try:
            text = path.read_text()
        except OSError as e:
            raise UserError(f"cannot read pipeline file {path}: {e.strerror}") from None
        return parse(text, path.name)
    entry = _named_dir() / f"{name_or_path}.toml"
    if not entry.is_file():
        raise UnknownNameError("pipeline", name_or_path, named_pipelines())
    return parse(entry.read_text(), name_or_path)
