"""The constant methods of a written ``.pte`` (``get_max_seq_len``, ``get_eos_ids``, ...),
read back through ``executorch.runtime`` the way ExecuTorch's LLM runner reads them: every
method that takes no input is executed, and one output is a scalar, several a list."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_pte_metadata(pte: str | Path, program: Any = None) -> dict[str, Any]:
    """``{method: value}`` for the ``.pte``'s input-less methods (``program``: an already
    loaded ``executorch.runtime`` Program of it)."""
    if program is None:
        from pteflow.ir.runnable import load_program

        program = load_program(Path(pte))
    out: dict[str, Any] = {}
    for name in sorted(program.method_names):
        if program.metadata(name).num_inputs() != 0:
            continue
        method = program.load_method(name)
        if method is None:
            continue
        values = [_plain(v) for v in method.execute([])]
        out[name] = values[0] if len(values) == 1 else values
    return out


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def metadata_line(values: dict[str, Any]) -> str:
    """One line for the run's summary: ``metadata: get_bos_id=1, get_eos_ids=[2, 3], ...``."""
    if not values:
        return "metadata: none (the .pte has no constant methods)"
    return "metadata: " + ", ".join(f"{k}={v}" for k, v in values.items())


def written_metadata(pte: Path | None) -> dict[str, Any] | None:
    """The constant methods the .pte holds (what the LLM runner reads); None without one,
    or for a .pte this runtime cannot load (emit and verification said why)."""
    if pte is None or not pte.exists():
        return None
    try:
        return read_pte_metadata(pte)
    except Exception:
        return None
