"""ir.serialized: the .pte of an EXECUTORCH program read from the pieces ExecuTorch holds.

``ExecutorchProgramManager.buffer`` joins the serialized pieces into one ``bytes`` and
keeps it for the manager's life: a second copy of every weight, held from the invariant
check after to-executorch to the end of the run (~100 MB of peak RSS on a stories-sized
Llama, issue 12). Nothing on the compile path may create it.
"""

from __future__ import annotations

import hashlib
import io

from pteflow.ir import Level
from pteflow.ir.invariants import check_level
from pteflow.ir.serialized import pte_bytes, pte_pieces, pte_sha256, pte_size, write_pte
from pteflow.passes.cache import blobs
from pteflow.passes.emit.emit import EmitPass
from pteflow.testing import build_program

from ..models import mlp


def _fresh_executorch():
    module, inputs = mlp()
    return build_program(module, inputs, level=Level.EXECUTORCH)


def test_the_pieces_are_the_pte_and_every_reading_agrees():
    program = _fresh_executorch()
    manager = program.artifact
    pieces = pte_pieces(manager)
    assert len(pieces) > 1  # the flatbuffer and its segments, not one joined copy
    data = pte_bytes(manager)
    assert data == bytes(manager._pte_data)  # what ExecuTorch serialized
    assert pte_size(manager) == len(data)
    assert pte_sha256(manager) == hashlib.sha256(data).hexdigest()
    out = io.BytesIO()
    write_pte(manager, out)
    assert out.getvalue() == data


def test_checking_and_emitting_make_no_contiguous_copy(tmp_path):
    program = _fresh_executorch()
    manager = program.artifact
    check_level(program)  # the to-executorch invariant: serializes, kernels exist
    out = tmp_path / "m.pte"
    EmitPass(path=str(out)).apply(program)
    assert manager._buffer is None  # upstream's cached copy was never made
    assert out.read_bytes() == pte_bytes(manager)


def test_pte_pieces_store_as_blob_references_and_join_back():
    """The cache stores the .pte as references to the weights' blobs, piece by piece."""
    import torch

    module = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU()).eval()
    program = build_program(module, (torch.randn(1, 64),), level=Level.EXECUTORCH)
    manager = program.artifact
    weights = [t.detach().contiguous() for t in module.state_dict().values()]
    known = [w for w in weights if w.numel() * w.element_size() >= blobs.MIN_SPLIT]
    assert known, "the 64x64 weight is big enough to be a blob"
    split = blobs.split(pte_pieces(manager), known)
    assert any(s is k for s in split for k in known)  # referenced, not copied
    assert blobs._join(split) == pte_bytes(manager)
    assert manager._buffer is None
