"""The pass-result cache: reuse, invalidation by options and by source, corruption, eviction.

Every run here compiles the small MLP with XNNPACK (delegates included) into a tmp_path
cache: the EDGE entries go through executorch.exir.serde, the final one through the .pte.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pteflow.ir import Program
from pteflow.passes import PassManager
from pteflow.passes.cache import MAGIC, PassCache, parse_size
from pteflow.passes.registry import load_registry

from ...models import mlp

pytestmark = pytest.mark.usefixtures("every_result_stored")

PIPELINE = (
    ("export", {}),
    ("to-edge", {"check_ir_validity": False}),
    ("partition-xnnpack", {}),
    ("convert-to-linear", {}),
    ("to-executorch", {}),
)


def passes(out: Path, **overrides: dict) -> list:
    reg = load_registry()
    built = [reg[name](**{**opts, **overrides.get(name, {})}) for name, opts in PIPELINE]
    return [*built, reg["emit"](path=str(out))]


def run(cache: PassCache | None, out: Path, extra: list | None = None, **overrides: dict):
    module, inputs = mlp()
    ps = passes(out, **overrides) + list(extra or [])
    result = PassManager(ps, registry=load_registry()).run(
        Program.eager(module, inputs), cache=cache
    )
    return result, out.read_bytes()


def cached(result) -> dict[str, bool]:
    return {r.name: r.cached for r in result.records}


@pytest.fixture
def messages():
    return []


@pytest.fixture
def cache(tmp_path, messages) -> PassCache:
    return PassCache(tmp_path / "cache", log=messages.append)


def test_second_run_restores_every_cacheable_pass_and_writes_the_same_pte(
    tmp_path, cache, messages
):
    first, pte1 = run(cache, tmp_path / "a.pte")
    assert not any(cached(first).values())
    second, pte2 = run(cache, tmp_path / "b.pte")
    assert pte2 == pte1
    assert cached(second) == {
        "export": True,
        "to-edge": True,
        "partition-xnnpack": True,
        "convert-to-linear": True,
        "to-executorch": True,
        "emit": False,  # a side effect: always runs
    }
    # cached records keep what the pass did when it ran
    by_name = {r.name: r for r in second.records}
    assert by_name["partition-xnnpack"].delegated == first.records[2].delegated
    assert by_name["to-edge"].ops_after == first.records[1].ops_after
    info = cache.info()
    assert info.entries == 5 and info.total_bytes > 0
    assert info.last_run["hits"] == 5 and info.last_run["hit_rate"] == 1.0
    assert not messages


def test_an_option_change_reruns_that_pass_and_what_follows_only(tmp_path, cache):
    run(cache, tmp_path / "a.pte")
    changed, pte = run(cache, tmp_path / "b.pte", **{"to-executorch": {"const_prop": True}})
    assert cached(changed) == {
        "export": True,
        "to-edge": True,
        "partition-xnnpack": True,
        "convert-to-linear": True,
        "to-executorch": False,
        "emit": False,
    }
    # the restored (delegated) EDGE program lowers to exactly what a fresh run makes
    _fresh, fresh_pte = run(None, tmp_path / "c.pte", **{"to-executorch": {"const_prop": True}})
    assert pte == fresh_pte


def test_an_emit_option_change_restores_everything_before_emit(tmp_path, cache):
    run(cache, tmp_path / "a.pte")
    again, pte = run(cache, tmp_path / "elsewhere.pte")
    assert [r.name for r in again.records if not r.cached] == ["emit"]
    assert (tmp_path / "elsewhere.pte").read_bytes() == pte


LOCAL_PASS = '''
from typing import ClassVar

import attrs

from pteflow.ir import Level, Program
from pteflow.passes.base import Pass, PassContext, PassInfo, PassResult


@attrs.frozen
class ScaleOutputPass(Pass):
    """Multiply every output by a constant (a test-local pass)."""

    info: ClassVar[PassInfo] = PassInfo(name="scale-output", level_in=Level.ATEN)

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import torch

        for ep in program.exported_programs().values():
            graph = ep.graph_module.graph
            out = graph.output_node()
            with graph.inserting_before(out):
                scaled = [
                    graph.call_function(torch.ops.aten.mul.Tensor, (v, FACTOR))
                    for v in out.args[0]
                ]
            for node in scaled:
                node.meta["val"] = node.args[0].meta["val"]
            out.args = (tuple(scaled),)
            ep.graph_module.recompile()
        return PassResult(program, True)
'''


def load_local_pass(tmp_path: Path, factor: float):
    path = tmp_path / "local_scale_pass.py"
    path.write_text(textwrap.dedent(LOCAL_PASS) + f"\nFACTOR = {factor!r}\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns()))
    sys.modules.pop("local_scale_pass", None)
    spec = importlib.util.spec_from_file_location("local_scale_pass", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["local_scale_pass"] = module
    spec.loader.exec_module(module)
    return module.ScaleOutputPass


def test_an_edited_pass_is_not_reused(tmp_path, cache):
    try:
        first, pte1 = run(cache, tmp_path / "a.pte", [load_local_pass(tmp_path, 2.0)()])
        assert not cached(first)["scale-output"]
        again, _ = run(cache, tmp_path / "b.pte", [load_local_pass(tmp_path, 2.0)()])
        assert cached(again)["scale-output"] and cached(again)["to-executorch"]
        # the test rewrites the pass's module: same class, same options, new code
        edited, pte3 = run(cache, tmp_path / "c.pte", [load_local_pass(tmp_path, 3.0)()])
    finally:
        sys.modules.pop("local_scale_pass", None)
    assert cached(edited)["export"]
    assert not cached(edited)["scale-output"] and not cached(edited)["to-edge"]
    assert pte3 != pte1


def test_corrupt_and_truncated_entries_are_recomputed_with_a_warning(tmp_path, cache, messages):
    _first, pte1 = run(cache, tmp_path / "a.pte")
    entries = sorted(cache.entries_dir.glob("*/*.entry"), key=lambda p: p.stat().st_size)
    # truncate the biggest, flip one payload byte in every other with a payload
    for path in entries:
        data = bytearray(path.read_bytes())
        if path == entries[-1]:
            path.write_bytes(bytes(data[: len(data) // 2]))
        else:
            data[-1] ^= 0xFF
            path.write_bytes(bytes(data))
    again, pte2 = run(cache, tmp_path / "b.pte")
    assert pte2 == pte1
    assert not cached(again)["to-executorch"]
    assert any("corrupt" in m for m in messages)
    # dropped entries were stored again, whole
    third, pte3 = run(cache, tmp_path / "c.pte")
    assert pte3 == pte1 and cached(third)["to-executorch"]


def test_a_bad_header_is_a_miss_not_a_crash(tmp_path, cache, messages):
    run(cache, tmp_path / "a.pte")
    for path in cache.entries_dir.glob("*/*.entry"):
        path.write_bytes(MAGIC + b"\0" * 5)
    again, _ = run(cache, tmp_path / "b.pte")
    assert not any(cached(again).values())
    assert any("truncated header" in m for m in messages)


def test_least_recently_used_entries_are_evicted_over_the_cap(tmp_path):
    cache = PassCache(tmp_path / "c", max_bytes=1)
    keys = [f"{i:02x}" + "0" * 62 for i in range(4)]
    for i, key in enumerate(keys):
        tmp = cache.write_tmp(key, {"key": key}, b"x" * 60)
        os.replace(tmp, cache.path(key))
        os.utime(cache.path(key), (1000 + i, 1000 + i))
    os.utime(cache.path(keys[0]), (2000, 2000))  # used most recently
    cache.max_bytes = 2 * cache.path(keys[0]).stat().st_size + 1
    assert cache.evict() == 2
    left = {p.stem for p in cache.entries_dir.glob("*/*.entry")}
    assert left == {keys[0], keys[3]}


def test_clear_removes_everything(tmp_path, cache):
    run(cache, tmp_path / "a.pte")
    assert cache.clear() == 5
    assert cache.info().entries == 0 and cache.info().last_run is None


@pytest.mark.parametrize(
    ("text", "size"), [("10G", 10 * 2**30), ("500M", 500 * 2**20), ("1024", 1024), ("2kb", 2048)]
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.slow
def test_tiny_llama_aten_entry_round_trips_to_the_same_pte(tmp_path):
    """The ATEN entry (graph by serde, weights as blobs) keeps what the rest of
    xnnpack_default needs (dynamic shapes, unbacked KV-cache positions, the custom SDPA op)."""
    import zlib

    from pteflow.driver import pipelines
    from pteflow.driver.models import tiny_llama
    from pteflow.driver.spec import build_pass
    from pteflow.ir import Level
    from pteflow.passes.cache import blobs, codec

    reg = load_registry()
    ps = [build_pass(reg, s) for s in pipelines.load("xnnpack_default").passes]
    ps = [p for p in ps if p.name != "emit"]
    head = [p for p in ps if p.contract.level_in == Level.EAGER]
    tail = [p for p in ps if p.contract.level_in != Level.EAGER]
    aten = PassManager(head, registry=reg).run(tiny_llama().program).program
    blob_dir = blobs.BlobDir(tmp_path, lambda d: d.mkdir(parents=True, exist_ok=True))
    value = codec.encode(aten)
    raw, _sizes = blobs.dumps(value, blob_dir.put, {}, codec.shared(value))
    restored = codec.decode(zlib.compress(raw), codec.fact_table(aten.facts), blob_dir)
    assert restored is not None and restored.level == Level.ATEN
    from_restored = PassManager(tail, registry=reg).run(restored).program.artifact.buffer
    fresh = PassManager(tail, registry=reg).run(aten).program.artifact.buffer
    assert from_restored == fresh
