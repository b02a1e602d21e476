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
