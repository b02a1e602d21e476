"""EDGE and EXECUTORCH entries hold serde's schema objects, pickled, not serde's JSON.

``codec._GraphTree``: the writer thread pickled each graph as JSON through serde's
``_dataclass_to_dict`` (pure Python, holding the GIL the passes need); it pickles the
schema objects with the C pickler now, and a restore gives them to serde's deserializer
without parsing JSON. Entries stored as JSON before still restore. The small MLP through
XNNPACK (``test_cache.py``'s pipeline).
"""

from __future__ import annotations

import threading
import zlib
from collections import Counter

import pytest

from pteflow.ir import Level
from pteflow.passes.cache import PassCache, blobs, codec

from .test_cache import cached, run

pytestmark = pytest.mark.usefixtures("every_result_stored")


@pytest.fixture
def to_dict_calls(monkeypatch) -> Counter:
    """Thread name -> calls of serde's ``_dataclass_to_dict`` (the real one, counted)."""
    from executorch.exir.serde import export_serialize

    real, seen = export_serialize._dataclass_to_dict, Counter()

    def counted(obj):
        seen[threading.current_thread().name] += 1
        return real(obj)

    monkeypatch.setattr(export_serialize, "_dataclass_to_dict", counted)
    return seen


def test_the_writer_pickles_trees_not_json_and_a_resume_lowers_the_same(
    tmp_path, to_dict_calls, writer_kind
):
    cache = PassCache(tmp_path / "cache", log=pytest.fail)
    first, pte1 = run(cache, tmp_path / "a.pte")
    assert to_dict_calls["pteflow-cache"] == 0
    # a resume from to-edge's entry (the ones after it gone) lowers to the same bytes
    from .test_integrity import entries_by_pass

    by_pass = entries_by_pass(cache)
    for name in ("partition-xnnpack", "convert-to-linear", "to-executorch"):
        by_pass[name].unlink()
    second, pte2 = run(cache, tmp_path / "b.pte")
    assert cached(second)["to-edge"] and not cached(second)["partition-xnnpack"]
    assert pte2 == pte1
    # and from to-executorch's (its serde trees, delegates included)
    third, pte3 = run(cache, tmp_path / "c.pte")
    assert cached(third)["to-executorch"]
    assert pte3 == pte1
    assert [n.op for n in third.program.artifact.exported_program().graph.nodes] == [
        n.op for n in first.program.artifact.exported_program().graph.nodes
    ]


def test_an_entry_holding_serde_json_still_restores(tmp_path):
    """The layout before the trees: the graph as serde's JSON bytes."""
    import json

    from executorch.exir.serde import export_serialize as es

    from pteflow import testing

    from ...models import mlp

    program = testing.build_program(*mlp(), level=Level.EDGE)
    value = codec.encode(program)
    methods = value["artifact"]["methods"]
    for method, (tree, *rest) in list(methods.items()):
        text = json.dumps(
            es._dataclass_to_dict(codec._unpickled_tree(tree.data)), cls=es.EnumEncoder
        )
        methods[method] = (text.encode("utf-8"), *rest)
    blob_dir = blobs.BlobDir(tmp_path, lambda d: d.mkdir(parents=True, exist_ok=True))
    raw, _sizes = blobs.dumps(value, blob_dir.put, {}, codec.shared(value))
    restored = codec.decode(zlib.compress(raw), codec.fact_table(program.facts), blob_dir)
    assert restored is not None and restored.level == Level.EDGE
    got = restored.artifact.exported_program().graph
    want = program.artifact.exported_program().graph
    assert [str(n.target) for n in got.nodes] == [str(n.target) for n in want.nodes]


def test_encode_pauses_the_collector_and_keeps_no_schema_objects(monkeypatch):
    """serde builds tens of thousands of acyclic objects per graph: with the collector
    running, their allocations set off collections that walk every live graph. ``encode``
    pauses it (and gives it back as it found it), and the value it returns holds each
    graph as pickled bytes, not the objects."""
    import gc

    from executorch.exir.serde.serialize import ExportedProgramSerializer

    from pteflow import testing

    from ...models import mlp

    real, seen = ExportedProgramSerializer.serialize, []

    def noted(self, *args, **kwargs):
        seen.append(gc.isenabled())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ExportedProgramSerializer, "serialize", noted)
    program = testing.build_program(*mlp(), level=Level.EDGE)
    assert gc.isenabled()
    value = codec.encode(program)
    assert seen == [False] and gc.isenabled()
    (tree, *_rest) = value["artifact"]["methods"]["forward"]
    assert isinstance(tree.data, bytes)
    gc.disable()  # a caller's choice is kept
    try:
        codec.encode(program)
        assert not gc.isenabled()
    finally:
        gc.enable()
