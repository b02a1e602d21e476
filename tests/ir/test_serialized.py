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
from pteflow.passes.cache import pte_split
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
    known = [w for w in weights if w.numel() * w.element_size() >= pte_split.MIN_SPLIT]
    assert known, "the 64x64 weight is big enough to be a blob"
    split = pte_split.split(pte_pieces(manager), known)
    assert any(s is k for s in split for k in known)  # referenced, not copied
    assert pte_split._join(split) == pte_bytes(manager)
    assert manager._buffer is None


def test_the_program_part_is_read_without_the_segments(tmp_path):
    """Reading which delegates a .pte has (verification asks before loading it) reads the
    flatbuffer, not the weights after it: the whole file in bytes plus its deserialized
    segments was +190 MB of a verified stories run's peak (issue 12)."""
    import torch

    from pteflow.ir.views import pte_program_part, pte_summary, read_pte_program_part

    module = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU()).eval()
    program = build_program(module, (torch.randn(1, 64),), level=Level.EXECUTORCH)
    data = pte_bytes(program.artifact)
    path = tmp_path / "m.pte"
    path.write_bytes(data)
    part = read_pte_program_part(path)
    assert part == pte_program_part(data)
    assert len(part) < len(data) - 64 * 64 * 4  # the 16 KB weight is not in it
    assert pte_summary(part) == pte_summary(data)
    assert pte_summary(part)["forward"].kernel_calls > 0
    tiny = tmp_path / "tiny.pte"  # too short for a header: read whole, as before
    tiny.write_bytes(b"\0" * 10)
    assert read_pte_program_part(tiny) == b"\0" * 10


def test_a_piece_that_is_the_known_bytes_is_not_compared_with_itself():
    """The .pte holds the named data's byte strings themselves (XNNPACK's weights: 5 GB at
    1B): split takes such a piece whole without reading it; equal bytes in another object
    are still compared."""

    class Uncompared(bytes):
        def startswith(self, *args):
            raise AssertionError("compared byte by byte")

    named = Uncompared(bytes(range(256)) * 64)
    head, tail = b"\x01" * 64, b"\x02" * 40
    assert pte_split.split([head, named, tail], [named]) == [head, named, tail]
    copy = bytes(named)
    assert pte_split.split([copy], [named])[0] is named  # found by comparing
    other = bytes(reversed(copy))
    assert pte_split.split([other], [named]) == [other]
