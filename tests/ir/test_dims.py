"""``ir.dims``: a dynamic dimension named without importing torch.export's sympy, read
by the cache like torch's own and by every pass as torch's own."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

import pteflow
from pteflow.ir import Program, hashing
from pteflow.ir.dims import DeferredShapes, Dim, torch_dynamic_shapes


class Double(torch.nn.Module):
    def forward(self, x, y):
        return x * 2, y + 1


def _program(dim_type) -> Program:
    seq = dim_type("seq", max=16)
    return Program.eager(
        Double(), (torch.ones(1, 4), torch.ones(4, 2)), dynamic_shapes=({1: seq}, {0: seq})
    )


@pytest.mark.parametrize(
    "bounds", [{}, {"max": 255}, {"min": 0, "max": 9}, {"min": 2, "max": 9}, {"min": 3}]
)
def test_it_reads_like_torch_export_dim(bounds):
    """Its repr is what a program's cache key holds: the same as torch's."""
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


def test_every_mapping_holds_dim_finds_is_converted():
    """A read-only mapping of dims (``types.MappingProxyType``) is looked into by
    ``holds_dim``, so it is converted too: torch would reject an ir Dim inside it."""
    from types import MappingProxyType

    from pteflow.ir.dims import holds_dim

    shapes = (MappingProxyType({0: Dim("seq", max=15)}),)
    assert holds_dim(shapes)
    (converted,) = torch_dynamic_shapes(shapes)
    assert isinstance(converted[0], type(torch.export.Dim("x"))) and converted[0].max == 15


def test_a_program_keys_alike_and_reads_torch_dims_made_once():
    """The cache key of a program naming an ir Dim is the one of the same program naming
    torch's (entries made before still hit) and is taken without making torch's; a
    read gives torch's, one per name, the same objects on every read."""
    deferred, eager = _program(Dim), _program(torch.export.Dim)
    shapes = deferred.dynamic_shapes
    assert isinstance(shapes, DeferredShapes) and list(shapes) == ["forward"]
    assert hashing.program_hash(deferred) == hashing.program_hash(eager)
    assert not shapes.made  # hashing, the keys and len() made nothing
    (x_dims, y_dims) = shapes["forward"]
    assert isinstance(x_dims[1], torch.export.Dim) and x_dims[1] is y_dims[0]
    assert shapes["forward"] is deferred.dynamic_shapes["forward"]
    assert hashing.program_hash(deferred) == hashing.program_hash(eager)  # made: alike


def test_evolve_copy_and_pickle_keep_them_deferred():
    program = _program(Dim)
    later = program.evolve(metadata={"a": 1}).with_facts()
    assert later.dynamic_shapes is program.dynamic_shapes and not later.dynamic_shapes.made
    again = pickle.loads(pickle.dumps(later.dynamic_shapes))
    assert isinstance(again, DeferredShapes) and again.text == later.dynamic_shapes.text
    later.dynamic_shapes["forward"]
    assert not again.made and not copy.copy(again).made
    assert dict(again) == {"forward": again["forward"]}


def test_shapes_without_an_ir_dim_stay_a_plain_dict():
    program = _program(torch.export.Dim)
    assert type(program.dynamic_shapes) is dict
    assert Program.eager(Double(), (torch.ones(1), torch.ones(1))).dynamic_shapes == {}


def test_torch_export_takes_them_as_a_plugin_pass_hands_them():
    """What a pass outside pteflow does with ``program.dynamic_shapes`` (the reason they
    are made into torch's when read, not in the export pass): torch.export accepts them."""
    program = _program(Dim)
    (module,) = program.modules().values()
    ep = torch.export.export(
        module, program.example_inputs["forward"], dynamic_shapes=program.dynamic_shapes["forward"]
    )
    (bounds,) = ep.range_constraints.values()
    assert (bounds.lower, bounds.upper) == (0, 16)


def test_the_export_pass_exports_with_its_bounds():
    result = pteflow.compile(_program(Dim), passes="export", cache=False, verify=False)
    (ep,) = result.program.exported_programs().values()
    (bounds,) = ep.range_constraints.values()
    assert (bounds.lower, bounds.upper) == (0, 16)
    x, y = ep.module()(torch.ones(1, 9), torch.ones(9, 2))
    assert x.shape == (1, 9) and y.shape == (9, 2)
