"""Each delegate is serialized once a run (``passes/cache/delegate_texts.py``): partition's
entry serializes it, to-executorch's takes that text, with either writer (a forked child
writes its texts to a file, the parent hands it to the next child). A delegate edited in
place since is serialized again; a file damaged, unwritable or left by a failed run costs
only the reuse. The small MLP through XNNPACK (``test_cache.py``'s pipeline).
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from pteflow.ir import Level, Program
from pteflow.ir.errors import PassFailedError
from pteflow.passes import PassManager
from pteflow.passes.cache import PassCache, codec, delegate_texts, strip
from pteflow.passes.registry import load_registry

from ...models import mlp
from .test_cache import cached, run
from .test_integrity import entries_by_pass


@pytest.fixture
def serialized(tmp_path, monkeypatch):
    """Delegates serde serialized, one line per call, from this process or a child."""
    from executorch.exir.serde.serialize import GraphModuleSerializer

    log = tmp_path / "serialized.log"
    real = GraphModuleSerializer.serialize_lowered_module

    def counted(self, node):
        with open(log, "a") as f:  # appended whole: one short line per call
            f.write(f"{os.getpid()} {node.target}\n")
        return real(self, node)

    monkeypatch.setattr(GraphModuleSerializer, "serialize_lowered_module", counted)
    return lambda: log.read_text().splitlines() if log.exists() else []


def test_a_run_serializes_each_delegate_once_and_its_entries_restore(
    tmp_path, serialized, writer_kind
):
    cache = PassCache(tmp_path / "cache", log=pytest.fail)
    first, pte1 = run(cache, tmp_path / "a.pte")
    delegates = delegate_texts.delegates_of(first.program)
    assert len(delegates) >= 1
    # partition-xnnpack's entry serialized them; to-executorch's took its texts
    assert len(serialized()) == len(delegates)
    # forgotten once the session finished, and the children's files removed
    assert len(cache.delegate_texts) == 0
    assert not list(cache.directory.rglob(".texts.*"))
    # to-executorch's entry restores the program it stored, delegate included
    for name in ("partition-xnnpack", "convert-to-linear"):
        entries_by_pass(cache)[name].unlink()
    second, pte2 = run(cache, tmp_path / "b.pte")
    assert cached(second)["to-executorch"] and pte2 == pte1
    restored = delegate_texts.delegates_of(second.program)
    assert [[n.op for n in d.original_module.graph.nodes] for d in restored] == [
        [n.op for n in d.original_module.graph.nodes] for d in delegates
    ]


def test_a_run_that_fails_after_to_executorch_leaves_no_texts_file(tmp_path, monkeypatch):
    """The partition child wrote its texts and the parent adopted them (when it forked
    to-executorch's child); emit then fails: the abandoned writer removes the file with
    everything else uncommitted."""
    from pteflow.passes.emit.emit import EmitPass

    cache = PassCache(tmp_path / "cache", log=lambda m: None)
    written: list[Path] = []

    def fails(self, program, ctx):
        assert len(cache.delegate_texts) >= 1
        written.extend(cache.directory.rglob(".texts.*.tmp"))
        raise RuntimeError("emit failed here")

    monkeypatch.setenv("PTEFLOW_CACHE_WRITER", "fork")
    monkeypatch.setattr(EmitPass, "run", fails)
    with pytest.raises(PassFailedError, match="emit failed here"):
        run(cache, tmp_path / "a.pte")
    gc.collect()  # the failed session is collected: its writer abandoned
    assert written and not any(p.exists() for p in written)
    assert not list(cache.directory.rglob(".*.tmp")) and len(cache.delegate_texts) == 0


def test_a_texts_file_that_cannot_be_written_costs_only_the_reuse(
    tmp_path, serialized, monkeypatch
):
    """(A full disk, say.) The child's entry is stored all the same; the next child
    serializes the delegate itself."""

    def cannot(self, directory):
        raise OSError(28, "No space left on device")

    monkeypatch.setenv("PTEFLOW_CACHE_WRITER", "fork")
    monkeypatch.setattr(delegate_texts.DelegateTexts, "write", cannot)
    cache = PassCache(tmp_path / "cache", log=pytest.fail)
    first, pte1 = run(cache, tmp_path / "a.pte")
    delegates = delegate_texts.delegates_of(first.program)
    assert len(serialized()) == 2 * len(delegates)  # partition's entry, to-executorch's
    assert {"partition-xnnpack", "to-executorch"} <= set(entries_by_pass(cache))
    second, pte2 = run(cache, tmp_path / "b.pte")
    assert cached(second)["to-executorch"] and pte2 == pte1


def partitioned() -> Program:
    reg = load_registry()
    names = (("export", {}), ("to-edge", {"check_ir_validity": False}), ("partition-xnnpack", {}))
    module, inputs = mlp()
    manager = PassManager([reg[n](**o) for n, o in names], registry=reg)
    return manager.run(Program.eager(module, inputs)).program


def test_a_text_is_reused_for_the_same_delegate_unchanged_and_equals_serdes(serialized):
    program = partitioned()
    assert program.level == Level.EDGE
    texts = delegate_texts.DelegateTexts()
    plain = codec.encode(program)
    once = codec.encode(program, texts)
    calls = len(serialized())
    again = codec.encode(program, texts)
    assert len(serialized()) == calls  # the second encode serialized no delegate
    assert pickled(again) == pickled(once) == pickled(plain)
    assert not strip._REAL  # no stand-in is remembered past an encode


def test_a_delegate_edited_in_place_is_serialized_again(serialized):
    program = partitioned()
    texts = delegate_texts.DelegateTexts()
    codec.encode(program, texts)
    (delegate,) = delegate_texts.delegates_of(program)
    assert texts.lookup(delegate) is not None
    node = next(n for n in delegate.original_module.graph.nodes if n.op == "call_function")
    node.name = f"{node.name}_renamed"
    assert texts.lookup(delegate) is None
    calls = len(serialized())
    codec.encode(program, texts)
    assert len(serialized()) == calls + 1
    assert "_renamed" in (texts.lookup(delegate) or "")


def test_a_childs_file_is_adopted_only_for_the_delegates_the_parent_holds(tmp_path):
    program = partitioned()
    (delegate,) = delegate_texts.delegates_of(program)
    child = delegate_texts.DelegateTexts()
    child.remember(delegate, "text")
    written = child.write(tmp_path)
    assert written is not None and child.write(tmp_path) is None  # each text written once
    parent = delegate_texts.DelegateTexts()
    parent.adopt([], written)
    assert parent.lookup(delegate) is None
    parent.clear()  # adopted for no delegate: removed all the same
    assert not Path(written["file"]).exists()
    child.remember(delegate, "text")
    written = child.write(tmp_path)
    assert written is not None
    parent.adopt([delegate], {"file": 3, "ids": written["ids"]})
    assert parent.lookup(delegate) is None
    parent.adopt([delegate], {**written, "sha256": "0" * 64})  # not the file it wrote
    assert parent.lookup(delegate) is None
    parent = delegate_texts.DelegateTexts()
    parent.adopt([delegate], written)
    assert parent.lookup(delegate) == "text" and len(parent) == 1
    Path(written["file"]).write_text("{not json")  # read once, when first needed
    assert parent.lookup(delegate) == "text"
    other = delegate_texts.DelegateTexts()
    other.adopt([delegate], written)
    assert other.lookup(delegate) is None  # a damaged file: serialized again
    parent.clear()
    assert not Path(written["file"]).exists() and parent.lookup(delegate) is None


def pickled(value: dict) -> list[bytes]:
    """The graphs an encoded value holds, as the entry pickles them."""
    return [m[0].data for m in value["artifact"]["methods"].values()]
