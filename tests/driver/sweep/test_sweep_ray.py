"""``driver sweep`` end to end on a local Ray with 2 workers: the tiny Llama, two pipelines
x three ``to-executorch`` option sets; interrupted after two variants, then resumed."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

import pteflow
from pteflow.driver.options import CacheOptions
from pteflow.driver.sweep import run_sweep
from pteflow.passes.cache import PassCache

SWEEP = """\
pipelines = ["xnnpack_default", "portable_default"]

[axes]
"to-executorch" = [
    { const_prop = true },
    { const_prop = false },
    { sym_shape_eval = "upper-bound" },
]

[measure]
warmup = 1
runs = 3
"""


def cached_passes(directory: Path) -> Counter:
    """How many cache entries each pass has (by the entries' authenticated headers)."""
    cache = PassCache(directory)
    names: Counter = Counter()
    for entry in (directory / "entries").glob("*/*.entry"):
        header = cache.read_header(entry.stem)
        assert header is not None
        names[header["pass"].split("{")[0]] += 1
    return names


class Interrupt:
    """An echo that presses Ctrl-C in the sweep's process once ``after`` variants ended."""

    def __init__(self, after: int) -> None:
        self.after, self.lines = after, []

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        if sum(x.startswith("[ok]") for x in self.lines) == self.after:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_a_sweep_on_local_ray_matches_compiling_alone_and_resumes(tmp_path):
    import ray

    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP)
    out, cache_dir = tmp_path / "out", tmp_path / "cache"
    first = Interrupt(after=2)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(path, out, workers=2, cache_dir=str(cache_dir), echo=first)
    assert not ray.is_initialized()
    done_before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("variants/*/result.json")}
    assert len(done_before) >= 2

    lines: list[str] = []
    sweep = run_sweep(path, out, workers=2, cache_dir=str(cache_dir), echo=lines.append)
    assert sum(x.startswith("[finished earlier]") for x in lines) == len(done_before)
    assert sum(x.startswith("[ok]") for x in lines) == 6 - len(done_before)
    for ident, mtime in done_before.items():  # not run again
        assert (out / "variants" / ident / "result.json").stat().st_mtime_ns == mtime
    assert [r["status"] for r in sweep.results] == ["ok"] * 6
    text = "\n".join(lines)
    assert "pareto" in text and "cache: " in text

    # the shared prefix was computed once: one cache entry for export, restored by the rest
    assert cached_passes(cache_dir)["export"] == 1
    export_runs = Counter(
        p["cached"] for r in sweep.results for p in r["passes"] if p["pass"] == "export"
    )
    assert export_runs == {False: 1, True: 5}

    # every .pte is byte-identical to the same variant compiled alone (with its own cache)
    for r in sweep.results:
        alone = pteflow.compile(
            pipeline=r["pipeline"],
            overrides=r["overrides"],
            output=tmp_path / "alone" / f"{r['id']}.pte",
            cache=CacheOptions(directory=str(tmp_path / "alone-cache")),
        )
        assert alone.pte is not None
        assert alone.pte.read_bytes() == Path(r["pte"]).read_bytes(), r["label"]
        assert r["pte_bytes"] == alone.pte.stat().st_size
        assert r["decode_ms"] > 0 and r["err_eager"] < 1e-4

    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [row["label"] for row in rows] == [r["label"] for r in sweep.results]
    assert any(row["pareto"] == "True" for row in rows)
    assert rows[0]["err_baseline"] == "0.0"  # the baseline: the first unquantized variant
    assert (out / "results.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert (out / "results.json").exists()
