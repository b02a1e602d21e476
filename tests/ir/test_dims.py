"""``ir.dims.Dim``: a dynamic dimension named without importing torch.export, read by
the cache like torch's own and exported as torch's own."""

from __future__ import annotations

import pytest
import torch

import pteflow
from pteflow.ir import Program
from pteflow.ir.dims import Dim, torch_dynamic_shapes


@pytest.mark.parametrize(
    "bounds", [{}, {"max": 255}, {"min": 0, "max": 9}, {"min": 2, "max": 9}, {"min": 3}]
)
def test_it_reads_like_torch_export_dim(bounds):
    """Its repr is what a program's cache key holds: the same as torch's, so a model
    source that switches to it keeps its cache entries."""
    ours = Dim("seq", **bounds)
    theirs = torch.export.Dim("seq", **bounds)
    assert repr(ours) == repr(theirs)
    converted = torch_dynamic_shapes(ours)
    assert (converted.min, converted.max) == (theirs.min, theirs.max)


def test_nested_shapes_convert_and_a_shared_dim_stays_one():
    seq = Dim("seq", max=31)
    shapes = torch_dynamic_shapes(({0: seq}, [{1: seq}], {"pos": {0: 1}}, None))
    first, (second,), pos, none = shapes
    assert first[0] is second[1] and isinstance(first[0], type(torch.export.Dim("x")))
    assert pos == {"pos": {0: 1}} and none is None


def test_the_export_pass_exports_with_its_bounds():
    class Double(torch.nn.Module):
        def forward(self, x):
            return x * 2

    program = Program.eager(Double(), (torch.ones(1, 4),), dynamic_shapes=({1: Dim("n", max=16)},))
    result = pteflow.compile(program, passes="export", cache=False, verify=False)
    (ep,) = result.program.exported_programs().values()
    (bounds,) = ep.range_constraints.values()
    assert (bounds.lower, bounds.upper) == (0, 16)
    assert ep.module()(torch.ones(1, 9)).shape == (1, 9)
