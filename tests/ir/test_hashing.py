"""Content hashes: equal for equal content, different when weights, data, code or options change."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from pteflow.ir import Level, Program, code_hash, hashing
from pteflow.passes.convert.to_edge import ToEdgePass
from pteflow.testing import build_program

from ..models import mlp


def eager() -> Program:
    module, inputs = mlp()
    return Program.eager(module, inputs)


def test_equal_programs_hash_equal():
    assert hashing.program_hash(eager()) == hashing.program_hash(eager())


def test_one_weight_changes_the_hash():
    a, b = eager(), eager()
    with torch.no_grad():
        b.modules()["forward"].fc2.weight[0, 0] += 1e-6
    assert hashing.program_hash(a) != hashing.program_hash(b)


def test_a_plain_attribute_changes_the_hash():
    a, b = eager(), eager()
    b.modules()["forward"].fc1.some_flag = True
    assert hashing.program_hash(a) != hashing.program_hash(b)


def test_inputs_metadata_and_facts_are_part_of_the_hash():
    from pteflow.ir import facts

    base = eager()
    h = hashing.program_hash(base)
    assert hashing.program_hash(base.evolve(example_inputs={"forward": (torch.ones(4, 16),)})) != h
    assert hashing.program_hash(base.evolve(metadata={"n_layers": 2})) != h
    assert hashing.program_hash(base.with_facts(gained=[facts.KV_CACHE])) != h


def test_aten_hash_is_stable_across_exports():
    module, inputs = mlp()
    a = build_program(module, inputs, level=Level.ATEN)
    b = build_program(module, inputs, level=Level.ATEN)
    assert hashing.program_hash(a) == hashing.program_hash(b)


def test_source_hash_follows_the_file(tmp_path):
    path = tmp_path / "hashing_probe.py"

    def load(body: str):
        path.write_text(body)
        sys.modules.pop("hashing_probe", None)
        spec = importlib.util.spec_from_file_location("hashing_probe", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["hashing_probe"] = module
        spec.loader.exec_module(module)
        return module.f

    try:
        h1 = hashing.source_hash(load("def f():\n    return 1\n"))
        h2 = hashing.source_hash(load("def f():\n    return 1\n"))
        h3 = hashing.source_hash(load("def f():\n    return 2\n"))
    finally:
        sys.modules.pop("hashing_probe", None)
    assert h1 == h2 != h3


def test_source_hash_reaches_pteflow_helpers():
    """A pass's hash covers pteflow modules it reaches (base classes, ir), not only its own."""
    reached = {m.__name__ for m in code_hash._modules_reached(sys.modules[ToEdgePass.__module__])}
    assert {"pteflow.passes.convert.to_edge", "pteflow.passes.base", "pteflow.ir.program"} <= (
        reached
    )
    assert not any(name.startswith(("torch", "executorch")) for name in reached)


def test_options_canonical_form():
    assert hashing.canonical(ToEdgePass()) != hashing.canonical(ToEdgePass(skip_dim_order=True))
    assert hashing.canonical(ToEdgePass()) == hashing.canonical(ToEdgePass())
    assert hashing.canonical(0.1) != hashing.canonical(0.1000000000000001)


def test_an_object_known_only_by_address_is_unhashable():
    with pytest.raises(hashing.Unhashable):
        hashing.canonical(object())


def test_versions_name_the_pinned_packages():
    names = dict(hashing.versions())
    assert {"torch", "executorch", "torchao", "pteflow"} <= set(names)
    assert names["torch"].startswith("2.")


def test_large_weights_are_hashed_on_several_threads_to_the_same_hash(monkeypatch):
    """A run's first key waits for every weight's digest: past PARALLEL_DIGESTS_BYTES they
    are taken on a pool (sha256 releases the GIL), each once, and the hash is the one
    the sequential walk gives."""
    import os
    import threading

    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # a pool on a one-core machine too

    def model() -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Sequential(*(torch.nn.Linear(64, 64) for _ in range(8)))

    from pteflow.ir import tensor_digests

    monkeypatch.setattr(tensor_digests, "PARALLEL_DIGESTS_BYTES", 1 << 62)
    sequential = hashing.module_hash(model())

    taken: list[str] = []
    digest = tensor_digests.tensor_digest

    def recorded(t):
        if hashing.remembered_digest(t) is None:
            taken.append(threading.current_thread().name)
        return digest(t)

    monkeypatch.setattr(tensor_digests, "tensor_digest", recorded)
    monkeypatch.setattr(tensor_digests, "PARALLEL_DIGESTS_BYTES", 1)
    assert hashing.module_hash(model()) == sequential
    assert len(taken) == 16  # 8 weights, 8 biases: each hashed once
    assert all(name.startswith("pteflow-digest") for name in taken)


def test_a_memory_mapped_weight_is_hashed_without_its_file_staying_resident(tmp_path):
    """A weight of a memory-mapped checkpoint is hashed in pieces, each piece's file pages
    handed back once hashed: hashing the output layer for the constants' names held its
    37 MB of file pages beside the program at the end of a stories run (the peak)."""
    import hashlib

    from ..mapped_files import resident_kb

    def mapped_weight(path):
        torch.save({"w": torch.randn(4096, 1024, generator=torch.Generator().manual_seed(0))}, path)
        return torch.load(path, mmap=True, weights_only=True)["w"]  # 16 MB

    path = tmp_path / "weights.pth"
    weight = mapped_weight(path)
    want = hashlib.sha256(weight.numpy().tobytes()).hexdigest()
    from pteflow.ir import mapped_pages

    mapped_pages.release_mapped_files()  # reading it for `want`
    assert hashing.tensor_digest(weight) == want
    assert resident_kb(path) < 4096 + 256  # kB: at most one 4 MB piece and neighbours

    changed = mapped_weight(tmp_path / "changed.pth")
    changed[0, 0] += 1.0  # a private copy of the first page: the rest are still the file's
    assert hashing.tensor_digest(changed) == hashlib.sha256(changed.numpy().tobytes()).hexdigest()
    assert changed[0, 0] == weight[0, 0] + 1.0  # the written page is never dropped

    other = tmp_path / "whole.pth"
    whole = mapped_weight(other)
    mapped_pages.release_mapped_files()
    hashlib.sha256(hashing.raw_bytes(whole)).hexdigest()  # read in one piece, as before
    assert resident_kb(other) >= 16 * 1024


def test_pages_are_handed_back_only_by_the_main_thread(tmp_path):
    """Another thread (the cache's writer, the digest pool) hashes a mapped weight whole:
    dropping pages there could race a write on the main thread (a private page lost)."""
    import threading

    from pteflow.ir import mapped_pages

    from ..mapped_files import resident_kb

    path = tmp_path / "weights.pth"
    torch.save({"w": torch.randn(4096, 1024, generator=torch.Generator().manual_seed(0))}, path)
    weight = torch.load(path, mmap=True, weights_only=True)["w"]
    mapped_pages.release_mapped_files()
    worker = threading.Thread(target=hashing.tensor_digest, args=(weight,))
    worker.start()
    worker.join()
    assert resident_kb(path) >= 16 * 1024  # read whole, nothing handed back
