"""Partition copies made one at a time: each preprocess gets the same isolated program,
without every partition's copy alive at once.

Upstream's ``lower_all_submodules_to_backend`` deep-copies every partition's program
(``BackendDetails.copy_exported_program_for_preprocess``, weights included) into one list,
then ``preprocess_multimethod`` preprocesses them in order. With the default
``preprocess_multimethod`` each copy is used by exactly one ``preprocess`` call and by
nothing after it, so making the copy at that call (the same ``copy.deepcopy``) hands every
preprocess the same isolated program while only one copy is alive: at SmolLM2-135M's shapes
XNNPACK's ~210 single-linear partitions otherwise hold ~540 MB of copied weights at once.
Once its preprocess returns, a copy lets go of its weights: the copy and the programs the
backend's passes re-trace from it are cyclic garbage (graph <-> nodes) that only a full
collection frees, and the weights would wait for it (~176 MB at 135M, through
partitioning and to-executorch). The pages of the memory-mapped checkpoint a copy read are
handed back as soon as it is made (``pteflow.ir.mapped_pages``): while the backend packs a
weight, the copy and the payload hold it, not the file's pages as well.

Backends that override either hook (QNN and CoreML preprocess all partitions together;
CUDA copies its own way) are left as they are. The hooks are class attributes, so the
change is process-wide while ``to_backend`` runs (pteflow lowers from one thread) and is
undone when it returns or raises.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

from pteflow.ir.replaced import replaced


def backend_class(partitioner: Any) -> type | None:
    """The ``BackendDetails`` subclass ``partitioner`` delegates to, found the way upstream
    finds it (by name among the direct subclasses); None if it does not say."""
    from executorch.exir.backend.backend_details import BackendDetails

    spec = getattr(partitioner, "delegation_spec", None)
    backend_id = getattr(spec, "backend_id", None)
    found = [c for c in BackendDetails.__subclasses__() if c.__name__ == backend_id]
    return found[-1] if found else None


def _uses_default_hooks(backend: type) -> bool:
    from executorch.exir.backend.backend_details import BackendDetails

    def inherited(name: str) -> bool:
        mine, default = getattr(backend, name), getattr(BackendDetails, name)
        return getattr(mine, "__func__", None) is getattr(default, "__func__", None)

    return (
        isinstance(vars(backend).get("preprocess"), staticmethod)
        and inherited("preprocess_multimethod")
        and inherited("copy_exported_program_for_preprocess")
    )


@contextlib.contextmanager
def copies_one_at_a_time(partitioner: Any) -> Iterator[None]:
    """While lowering with ``partitioner``: its backend copies each partition's program
    when preprocessing it, not all of them before (see the module docstring)."""
    import torch

    backend = backend_class(partitioner)
    if backend is None or not _uses_default_hooks(backend):
        yield
        return
    from pteflow.ir import mapped_pages

    preprocess = backend.preprocess  # type: ignore[attr-defined]
    mapped = list(mapped_pages.data_file_mappings())

    def copy_then_preprocess(program: Any, compile_specs: Any) -> Any:
        copied = copy.deepcopy(program)
        for t in (*program.state_dict.values(), *program.constants.values()):
            if isinstance(t, torch.Tensor):  # the copy has the bytes: not the file's pages
                mapped_pages.release_tensor(t, mapped)
        try:
            return preprocess(copied, compile_specs)
        finally:
            copied.state_dict.clear()
            copied.constants.clear()

    no_copy = classmethod(lambda cls, program, compile_specs: program)
    with (
        replaced(backend, "copy_exported_program_for_preprocess", no_copy),
        replaced(backend, "preprocess", staticmethod(copy_then_preprocess)),
    ):
        yield
