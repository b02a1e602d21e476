"""The bench's cache cost: taken round by round from paired runs, where it goes by part."""

from __future__ import annotations

import pytest

from benchmarks import cache_cost


def _run(wall: float, **parts: float) -> dict:
    return {"wall_s": wall, "parts": parts}


def test_the_cost_is_taken_within_rounds():
    """Each cache run is compared with the no-cache run of its own round: rounds at 10, 20
    and 30 s, the cache costing 1% in the first, and one noisy run each way after. Paired
    by round the cost reads 1.01; the two kinds' medians read 1.20, sorted pairs 1.02."""
    bare = [_run(10.0, export=5.0), _run(20.0, export=10.0), _run(30.0, export=15.0)]
    cached = [_run(10.1, export=5.1), _run(30.6, export=20.6), _run(24.0, export=9.0)]
    cost = cache_cost.cache_cost(cached, bare)
    assert cost.ratio == pytest.approx(1.01)
    assert cost.ratios == pytest.approx([1.01, 1.53, 0.8])
    assert cost.interval == (pytest.approx(0.8), pytest.approx(1.53))  # n < 6: the range
    assert cost.by_part["export"] == pytest.approx(0.1)  # the median of 0.1, 10.6, -6.0


def test_the_part_a_cost_comes_from_is_shown_largest_first():
    """A cost in one pass and outside the passes, noise under 0.1 s elsewhere."""
    bare = [_run(10.0 + i, a=4.0, b=3.0, **{"outside passes": 3.0 + i}) for i in range(6)]
    cached = [_run(11.5 + i, a=4.05, b=3.9, **{"outside passes": 3.55 + i}) for i in range(6)]
    cost = cache_cost.cache_cost(cached, bare)
    assert cost.parts() == {"b": 0.9, "outside passes": 0.55}
    assert cost.ratio > 1.0
    low, high = cost.interval
    assert low <= cost.ratio <= high


def test_runs_that_do_not_pair_are_refused():
    with pytest.raises(ValueError, match="do not pair"):
        cache_cost.cache_cost([_run(1.0)], [])
    with pytest.raises(ValueError, match="do not pair"):
        cache_cost.cache_cost([], [])


def test_run_parts_sums_a_pass_met_twice_and_keeps_what_is_outside():
    report = {
        "passes": [
            {"name": "export", "wall_s": 2.0},
            {"name": "to-edge", "wall_s": 3.0},
            {"name": "export", "wall_s": 0.5},
        ]
    }
    assert cache_cost.run_parts(report, 7.0) == {
        "export": 2.5,
        "to-edge": 3.0,
        "outside passes": 1.5,
    }


def test_the_table_shows_the_cost_with_its_interval():
    from benchmarks.bench_export import table

    row = {
        "size": "tiny",
        "pipeline": "xnnpack_default",
        "wall": 0.4,
        "wall_nocache": 0.39,
        "rss": 0.7,
        "rss_nocache": 0.7,
        "pte_size": 1.0,
        "decode": None,
        "cache_per_pte": 0.01,
        "cache_cost": 1.031,
        "cache_cost_interval": [0.984, 1.077],
        "cache_cost_rounds": 6,
        "abs": "wall 4.0 / 10.0 s",
    }
    header, _, line = table([row]).splitlines()
    assert header.split("|")[10].strip() == "cache cost"
    assert line.split("|")[10].strip() == "1.03 (0.98-1.08)"
    assert cache_cost.cell({"cache_cost": None}) == "-"
    one = {"cache_cost": 1.031, "cache_cost_interval": [1.031, 1.031], "cache_cost_rounds": 1}
    assert cache_cost.cell(one) == "1.03 (one round)"
