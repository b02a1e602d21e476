"""ATEN entries are saved without torch's canonical-form self-test, to the same bytes.

``passes/cache/aten_save.py``: ``torch.export.save`` runs ``canonicalize`` on the serialized
program and drops the result; the cache's save skips it. Counted with a wrapper around
the real ``canonicalize`` (it still runs where it is called).
"""

from __future__ import annotations

import io

import pytest
import torch

from pteflow.ir import Program
from pteflow.passes import PassManager
from pteflow.passes.cache import aten_save, codec
from pteflow.passes.registry import load_registry


class _Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 4)
        self.register_buffer("offset", torch.arange(4.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x)) + self.offset


def _exported() -> torch.export.ExportedProgram:
    n = torch.export.Dim("n", min=2, max=64)
    return torch.export.export(_Model(), (torch.randn(3, 8),), dynamic_shapes=({0: n},))


@pytest.fixture
def canonicalized(monkeypatch) -> list[int]:
    """How many times torch's ``canonicalize`` ran (the real one, counted)."""
    from torch._export.serde import serialize as torch_serde

    real, seen = torch_serde.canonicalize, []

    def counted(*args, **kwargs):
        seen.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch_serde, "canonicalize", counted)
    return seen


def test_the_same_bytes_as_torch_export_save_without_canonicalizing(canonicalized):
    ep = _exported()
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    assert len(canonicalized) == 1  # torch's own save runs the self-test
    assert aten_save.save(ep) == buf.getvalue()
    assert len(canonicalized) == 1  # the cache's does not
    from torch._export.serde import serialize as torch_serde

    assert torch_serde.canonicalize.__name__ == "counted"  # given back after the save


def test_an_aten_entry_is_encoded_without_canonicalizing_and_loads(canonicalized):
    reg = load_registry()
    program = (
        PassManager([reg["export"]()], registry=reg)
        .run(Program.eager(_Model(), (torch.randn(3, 8),)))
        .program
    )
    value = codec.encode(program)
    assert canonicalized == []
    (saved, _counts, _held) = value["artifact"]["aten"]["forward"]
    loaded = torch.export.load(io.BytesIO(saved))
    assert [n.op for n in loaded.graph.nodes] == [
        n.op for n in program.exported_programs()["forward"].graph.nodes
    ]
