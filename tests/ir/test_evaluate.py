"""``ir.evaluate.compare``: a NaN or inf never hides behind ``max``."""

from __future__ import annotations

import pytest
import torch

from pteflow.ir.evaluate import Comparison, compare

nan, inf = float("nan"), float("inf")


def test_nan_where_the_reference_is_finite_is_counted_not_zero():
    got, ref = [torch.tensor([1.0, nan, nan])], [torch.tensor([1.0, 2.0, 3.0])]
    c = compare(got, ref)
    assert c.nan == 2 and c.outputs == 3 and c.max_abs_diff == 0.0
    assert not c.within(1e9)
    assert c.problem() == "2 of 3 outputs are NaN in the .pte, finite in eager"


@pytest.mark.parametrize(
    ("got", "ref", "field"),
    [
        ([inf], [1.0], "inf"),
        ([-inf], [1.0], "inf"),
        ([1.0], [nan], "finite"),
        ([1.0], [inf], "finite"),
        ([-inf], [inf], "other"),
        ([nan], [inf], "other"),
        ([nan], [nan], "nan_both"),
    ],
)
def test_every_non_finite_mismatch_fails(got, ref, field):
    c = compare([torch.tensor(got)], [torch.tensor(ref)])
    assert getattr(c, field) == 1
    assert not c.within(inf)
    assert c.problem()


def test_equal_infinities_match_and_finite_parts_are_measured():
    c = compare([torch.tensor([-inf, 1.5, inf])], [torch.tensor([-inf, 1.0, inf])])
    assert c.within(0.5) and not c.within(0.4)
    assert c.max_abs_diff == 0.5 and c.nonfinite == 0 and c.problem() is None


def test_fp16_output_against_fp32_reference():
    c = compare([torch.tensor([1.0], dtype=torch.float16)], [torch.tensor([1.0])])
    assert c.within(0.0)


def test_structure_mismatch():
    assert not compare([torch.zeros(2)], [torch.zeros(2), torch.zeros(1)]).within(inf)
    c = compare([torch.zeros(2)], [torch.zeros(3)])
    assert c.structure and "shape" in c.problem()


def test_adding_comparisons_keeps_every_count():
    a = compare([torch.tensor([nan, 1.0])], [torch.tensor([0.0, 1.25])])
    b = compare([torch.tensor([3.0])], [torch.tensor([2.0])])
    total = a + b
    assert (total.nan, total.outputs, total.max_abs_diff) == (1, 3, 1.0)
    assert Comparison() + Comparison() == Comparison()
    assert total.to_json()["nonfinite"]["nan_where_finite"] == 1
