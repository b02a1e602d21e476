"""An ExportedProgram split for the cache: its graph for serde, its data held apart.

``stripped(ep)`` yields a shallow copy of ``ep`` whose state dict and tensor constants are
shapeless stand-ins (meta tensors of the same dtype, shape and strides) and whose
delegates (``LoweredBackendModule``) carry no payload, no named data and a stripped
original program, plus what was left out (``held``: the tensors and byte strings, which
the blob pickler stores by content). serde then writes only the graph. The real
program is put back as it was when the block ends (delegates are swapped in its graph
module for the duration: run it on the thread that owns the program, between passes).

``attach(ep, held)`` puts the held data into a program serde read back from the
stand-ins, so it holds exactly what was stripped.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Iterator
from typing import Any

from pteflow.ir import views

from .blobs import _plain

#: id(stand-in) -> the delegate it stands in for, while ``stripped`` holds it
_REAL: dict[int, Any] = {}


def real_delegate(stand_in: Any) -> Any:
    """The delegate ``stand_in`` stands in for within ``stripped`` (None: not a stand-in)."""
    return _REAL.get(id(stand_in))


def _stand_in(t: Any) -> Any:
    import torch

    meta = torch.empty_strided(tuple(t.shape), t.stride(), dtype=t.dtype, device="meta")
    if isinstance(t, torch.nn.Parameter):
        return torch.nn.Parameter(meta, requires_grad=t.requires_grad)
    return meta


def _delegates(ep: Any) -> list[tuple[str, Any]]:
    """``(attribute, delegate)`` once per delegate ``ep``'s graph calls."""
    return list(dict(views.named_delegates(ep.graph_module)).items())


def byte_strings(ep: Any) -> Iterator[Any]:
    """The byte strings ``stripped`` would hold of ``ep`` (delegate payloads and named
    data, nested delegates' included), found without stripping it."""
    for _target, lowered in _delegates(ep):
        yield lowered.processed_bytes
        named = lowered.named_data_store_output
        yield from (named.buffers if named is not None else ())
        yield from byte_strings(lowered.original_module)


@contextlib.contextmanager
def stripped(ep: Any) -> Iterator[tuple[Any, dict[str, Any]]]:
    """``(stand-in program, held data)``; see the module docstring."""
    state = {k: v for k, v in ep.state_dict.items() if _plain(v)}
    constants = {k: v for k, v in ep.constants.items() if _plain(v)}
    held: dict[str, Any] = {"state": state, "constants": constants, "delegates": {}}
    shadow = copy.copy(ep)
    vars(shadow)["_state_dict"] = {
        k: _stand_in(v) if k in state else v for k, v in ep.state_dict.items()
    }
    vars(shadow)["_constants"] = {
        k: _stand_in(v) if k in constants else v for k, v in ep.constants.items()
    }
    gm = ep.graph_module
    swapped: list[tuple[str, Any]] = []
    with contextlib.ExitStack() as stack:
        try:
            for target, lowered in _delegates(ep):
                original, inner = stack.enter_context(stripped(lowered.original_module))
                named = lowered.named_data_store_output
                buffers = list(named.buffers) if named is not None else None
                if named is not None:
                    named = dataclasses.replace(named, buffers=[b""] * len(named.buffers))
                held["delegates"][target] = {
                    "processed": lowered.processed_bytes,
                    "buffers": buffers,
                    "original": inner,
                }
                stand_in = type(lowered)(
                    original, lowered.backend_id, b"", lowered.compile_specs, named
                )
                setattr(gm, target, stand_in)
                _REAL[id(stand_in)] = lowered
                swapped.append((target, lowered))
            yield shadow, held
        finally:
            for target, lowered in swapped:
                _REAL.pop(id(getattr(gm, target)), None)
                setattr(gm, target, lowered)


def attach(ep: Any, held: dict[str, Any]) -> None:
    """Put ``held`` (from ``stripped``) into ``ep``, serde's reading of the stand-in."""
    ep.state_dict.update(held["state"])
    ep.constants.update(held["constants"])
    gm = ep.graph_module
    for target, data in held["delegates"].items():
        lowered = getattr(gm, target)
        attach(lowered.original_module, data["original"])
        named = lowered.named_data_store_output
        if named is not None and data["buffers"] is not None:
            named = dataclasses.replace(named, buffers=list(data["buffers"]))
        setattr(
            gm,
            target,
            type(lowered)(
                lowered.original_module,
                lowered.backend_id,
                data["processed"],
                lowered.compile_specs,
                named,
            ),
        )
