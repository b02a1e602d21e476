"""ATEN entries are torch's serde schema objects, built without torch's canonical-form
self-test or the debug text nobody logs, the same objects ``torch.export.save`` writes.

``passes/cache/aten_save.py``: ``torch.export.save`` runs ``canonicalize`` on the serialized
program and drops the result, and computes the graph's code as text for a debug log that
is off; the cache's serialization skips both. Counted with wrappers around the real
functions (they still run where they are called).
"""

from __future__ import annotations

import io
import json
import zipfile

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


def _saved_json(ep: torch.export.ExportedProgram) -> dict:
    """The graph's JSON in ``torch.export.save``'s archive."""
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    with zipfile.ZipFile(buf) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith("models/model.json")]
        return json.loads(archive.read(name))


def test_the_objects_torch_export_save_writes_without_canonicalizing(canonicalized, monkeypatch):
    from torch._export.serde import serialize as torch_serde

    ep = _exported()
    saved = _saved_json(ep)
    assert len(canonicalized) == 1  # torch's own save runs the self-test
    printed = []
    real_print = type(ep.graph_module).print_readable

    def counted_print(self, *args, **kwargs):
        printed.append(1)
        return real_print(self, *args, **kwargs)

    monkeypatch.setattr(type(ep.graph_module), "print_readable", counted_print)
    tree, *_parts = aten_save.serialize(ep)
    assert len(canonicalized) == 1 and printed == []  # the cache's does neither
    as_json = json.loads(torch_serde._to_json_bytes(tree))
    assert as_json == saved
    assert torch_serde.canonicalize.__name__ == "counted"  # given back after
    assert "print_readable" not in vars(ep.graph_module)


def test_an_aten_entry_is_encoded_without_canonicalizing_and_loads(canonicalized):
    reg = load_registry()
    program = (
        PassManager([reg["export"]()], registry=reg)
        .run(Program.eager(_Model(), (torch.randn(3, 8),)))
        .program
    )
    value = codec.encode(program)
    assert canonicalized == []
    (tree, *parts, _counts, _held) = value["artifact"]["aten"]["forward"]
    loaded = aten_save.deserialize(codec._unpickled_tree(tree.data), *parts)
    assert [n.op for n in loaded.graph.nodes] == [
        n.op for n in program.exported_programs()["forward"].graph.nodes
    ]


def test_an_entry_stored_as_torch_export_save_bytes_still_restores():
    """Entries written before the schema objects hold ``torch.export.save`` bytes."""
    from pteflow.ir import Level
    from pteflow.passes.cache import repair, strip

    ep = _exported()
    with strip.stripped(ep) as (shadow, held):
        buf = io.BytesIO()
        torch.export.save(shadow, buf)
    old = {"aten": {"forward": (buf.getvalue(), repair.positional_counts(ep), held)}}
    restored = codec._decode_artifact(Level.ATEN, old)["forward"]
    x = torch.randn(5, 8)
    torch.testing.assert_close(restored.module()(x), ep.module()(x))
