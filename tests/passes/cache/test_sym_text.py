"""Symbolic sizes are printed once per expression while the cache serializes, to the same
text (``passes/cache/sym_text.py``). A program with dynamic and derived sizes (a
concatenation doubles the dynamic dim), serialized by serde with and without it."""

from __future__ import annotations

import json

import torch

from pteflow.passes.cache import sym_text


class _Model(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([x, x * 2], dim=0)
        return y[1:] + 1


def _serialized(ep) -> str:
    """serde's JSON (a pickle would differ: equal texts from the table are one object)."""
    from executorch.exir.serde import export_serialize as es
    from executorch.exir.serde.serialize import ExportedProgramSerializer

    tree = ExportedProgramSerializer().serialize(ep).exported_program
    return json.dumps(es._dataclass_to_dict(tree), cls=es.EnumEncoder)


def test_the_same_serialization_with_sizes_printed_once(monkeypatch):
    from torch.fx.experimental.sym_node import SymNode

    n = torch.export.Dim("n", min=2, max=64)
    ep = torch.export.export(_Model(), (torch.randn(3, 4),), dynamic_shapes=({0: n},))
    upstream = SymNode.str
    printed = []

    def counted(self):
        printed.append(1)
        return upstream(self)

    monkeypatch.setattr(SymNode, "str", counted)
    plain = _serialized(ep)
    calls = len(printed)
    printed.clear()
    with sym_text.printed_once():
        once = _serialized(ep)
    assert once == plain
    assert 0 < len(printed) < calls  # each expression printed once, not once per size
    assert SymNode.str is counted  # given back


class _Lowered(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(4, 8)
        self.b = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


def test_the_same_serialization_with_ranges_converted_once(monkeypatch):
    """Every delegate's original program carries the model's range constraints; each
    symbol's range is converted once, by upstream's own function, to the same text."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.exir.serde import export_serialize

    n = torch.export.Dim("n", min=2, max=64)
    ep = torch.export.export(_Lowered(), (torch.randn(3, 4),), dynamic_shapes=({0: n},))
    edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
    lowered = edge.exported_program()
    assert any("call_delegate" in str(node.target) for node in lowered.graph.nodes)
    upstream = export_serialize._sympy_int_to_int
    converted = []

    def counted(val, adjust):
        converted.append(1)
        return upstream(val, adjust)

    monkeypatch.setattr(export_serialize, "_sympy_int_to_int", counted)
    plain = _serialized(lowered)
    calls = len(converted)
    converted.clear()
    before = export_serialize.serialize_range_constraints
    with sym_text.printed_once():
        once = _serialized(lowered)
    assert once == plain
    assert 0 < len(converted) < calls  # the delegate's program: its ranges not again
    assert export_serialize.serialize_range_constraints is before  # given back


def test_printing_once_imports_no_executorch_of_its_own():
    """An ATEN-only run (nothing of executorch imported) pays no import for the ranges'
    table: there is no executorch program to serialize. In a fresh interpreter."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pteflow.passes.cache import sym_text\n"
        "with sym_text.printed_once():\n"
        "    pass\n"
        "print('executorch.exir' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
