"""ATEN entries: what ``torch.export.save`` writes, without the work whose result it drops.

``serialize(ep)`` returns what torch's ``ExportedProgramSerializer`` builds (the schema
objects of the graph, and the state dict, constants and example inputs as bytes): the
cache pickles the schema objects at once (``codec._GraphTree``), as for EDGE programs, and
``deserialize`` hands them back to torch's ``ExportedProgramDeserializer``, what
``torch.export.load`` does after parsing its JSON. Skipped, each for the duration of the
call:

- ``canonicalize(serialized_ep, ...)``, which ``serialize`` runs under the comment "Test
  canonical form is well defined" and whose result it discards: a deep copy, sorted and
  renamed (stories: 0.9 of torch.export.save's 1.6 s, profiled). Replaced by the identity.
- serde's JSON (``_dataclass_to_dict``, pure Python: a third of what was left).
- ``serialize_graph``'s ``log.debug("...", graph_module.print_readable(...))``, whose
  argument Python computes (the graph's whole code as text) whether or not the debug log
  is on: a tenth. Skipped only when that logger would drop the record.

The schema objects are the ones torch's save turns into JSON
(tests/passes/cache/test_aten_save.py compares the JSON); nothing else in torch calls
``canonicalize``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from pteflow.ir.replaced import replaced


def _as_is(ep: Any, constants: Any = None) -> Any:
    return ep


def serialize(ep: Any) -> tuple[Any, bytes, bytes, bytes]:
    """(schema tree, state dict, constants, example inputs) of ``ep``, as torch's
    serializer builds them for ``torch.export.save``, its self-test skipped."""
    from torch._export.non_strict_utils import _enable_graph_inputs_of_type_nn_module
    from torch._export.serde import serialize as torch_serde

    # (a torch without it: the name is added for the call, unused, and removed after)
    with (
        replaced(torch_serde, "canonicalize", _as_is),
        _enable_graph_inputs_of_type_nn_module(ep.example_inputs),
        _debug_text_skipped(ep.graph_module, torch_serde.log),
    ):
        art = torch_serde.ExportedProgramSerializer().serialize(ep)
    return art.exported_program, art.state_dict, art.constants, art.example_inputs


def deserialize(tree: Any, state_dict: bytes, constants: bytes, example_inputs: bytes) -> Any:
    """The ExportedProgram ``serialize`` took apart (``torch.export.load``'s last step)."""
    from torch._export.serde.serialize import ExportedProgramDeserializer

    return ExportedProgramDeserializer().deserialize(tree, state_dict, constants, example_inputs)


@contextlib.contextmanager
def _debug_text_skipped(graph_module: Any, log: logging.Logger) -> Iterator[None]:
    """``graph_module.print_readable`` answers "" while inside, unless ``log`` would
    record a debug message (then its text is computed for it, as upstream does)."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    with replaced(graph_module, "print_readable", lambda *args, **kwargs: ""):
        yield
