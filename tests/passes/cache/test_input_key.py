"""A run's first key: for an input the cache holds nothing for, the memory-mapped weights
are hashed from their file beside the first pass; the key is the one a re-run takes at
once, and it names the input as it was when the run started."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

from pteflow.ir import Program, hashing
from pteflow.passes import PassManager
from pteflow.passes.cache import PassCache, input_key
from pteflow.passes.registry import load_registry

pytestmark = pytest.mark.usefixtures("every_result_stored")


def _save(path: Path, seed: int) -> Path:
    gen = torch.Generator().manual_seed(seed)
    state = {
        "weight": torch.randn(1024, 512, generator=gen),
        "bias": torch.randn(1024, generator=gen),
    }
    torch.save(state, path)
    return path


def _module(path: Path | None = None, state: dict | None = None) -> torch.nn.Module:
    """A Linear with a 2 MB weight: memory-mapped from ``path``, or ``state`` in memory."""
    with torch.device("meta"):
        module = torch.nn.Linear(512, 1024)
    loaded = torch.load(path, mmap=True, weights_only=True) if path is not None else state
    module.load_state_dict(loaded, assign=True)
    return module.eval()


def _program(module: torch.nn.Module) -> Program:
    return Program.eager(module, (torch.ones(1, 512),))


def _key_in_memory(tmp_path: Path, module: torch.nn.Module) -> str:
    """The first key of the same weights held in memory (no file to read), in a cache of
    its own."""
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    return PassCache(tmp_path / "elsewhere").input_key(_program(_module(state=state))).result()


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The files the first keys' digests are read from."""
    read = input_key._read_digest
    paths: list[str] = []

    def recorded(fd, offset, size):
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        return read(fd, offset, size)

    monkeypatch.setattr(input_key, "_read_digest", recorded)
    return paths


def test_a_new_input_is_keyed_from_its_file_to_the_key_a_re_run_takes_at_once(tmp_path, reads):
    path = _save(tmp_path / "w.pth", seed=0)
    module = _module(path)
    cache = PassCache(tmp_path / "cache")
    cold = cache.input_key(_program(module))
    assert not cold.seen
    # made without reading the mapped weight on this thread (the small bias: at once)
    assert hashing.remembered_digest(module.weight) is None
    assert hashing.remembered_digest(module.bias) is not None
    first = cold.result()
    assert reads == [str(path)]
    expected = hashlib.sha256(module.weight.detach().numpy().tobytes()).hexdigest()
    assert hashing.remembered_digest(module.weight) == expected  # the blobs find it
    assert first == _key_in_memory(tmp_path, module)

    cold.mark()
    again = cache.input_key(_program(_module(path)))  # a re-run: the same file loaded again
    assert again.seen
    assert again.result() == first
    assert reads == [str(path)]  # (taken from memory, at once)


def test_a_weight_met_twice_is_read_once_from_its_file(tmp_path, reads):
    """Tied weights (an embedding shared with the output layer): one read, no hashing of
    the second place's bytes before the pass."""
    path = _save(tmp_path / "w.pth", seed=0)
    module = torch.nn.ModuleDict({"a": _module(path), "b": torch.nn.Linear(512, 1024)})
    module["b"].weight = module["a"].weight
    module.eval()
    cold = PassCache(tmp_path / "cache").input_key(_program(module))
    assert hashing.remembered_digest(module["a"].weight) is None
    key = cold.result()
    assert reads == [str(path)]
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    twin = torch.nn.ModuleDict({"a": torch.nn.Linear(512, 1024), "b": torch.nn.Linear(512, 1024)})
    twin.load_state_dict(state)
    twin["b"].weight = twin["a"].weight
    twin.eval()
    assert key == PassCache(tmp_path / "elsewhere").input_key(_program(twin)).result()


def test_a_weight_the_first_pass_changes_in_place_keys_the_input_as_it_was(tmp_path, reads):
    path = _save(tmp_path / "w.pth", seed=0)
    unchanged = _key_in_memory(tmp_path, _module(path))
    module = _module(path)
    cold = PassCache(tmp_path / "cache").input_key(_program(module))
    with torch.no_grad():
        module.weight.add_(1.0)  # (the private mapping's pages become copies)
        module.bias.add_(1.0)
    assert cold.result() == unchanged
    assert hashing.remembered_digest(module.weight) is None  # the old digest is not its


def test_a_weight_changed_in_memory_before_the_run_is_keyed_by_its_bytes(tmp_path, reads):
    path = _save(tmp_path / "w.pth", seed=0)
    module = _module(path)
    with torch.no_grad():
        module.weight.mul_(2.0)
    key = PassCache(tmp_path / "cache").input_key(_program(module)).result()
    assert reads == []  # its pages are not the file's: not read from it
    assert key == _key_in_memory(tmp_path, module)
    assert key != _key_in_memory(tmp_path, _module(path))


def test_a_checkpoint_replaced_on_disk_is_not_what_the_key_reads(tmp_path, reads):
    """The file is opened when the key is started, and only if it is the one mapped: a new
    file put in its place (a rename) is never read as the weights' bytes."""
    path = _save(tmp_path / "w.pth", seed=0)
    module = _module(path)
    before = hashlib.sha256(module.weight.detach().numpy().tobytes()).hexdigest()
    ranges, files = input_key._file_ranges([module.weight])
    _save(tmp_path / "other.pth", seed=1).replace(path)  # a new checkpoint under its name
    [(_, fd, offset, size)] = ranges
    assert input_key._read_digest(fd, offset, size) == before
    for f in files:
        f.close()
    reads.clear()
    # a key started now does not read the new file as the mapped weights
    key = PassCache(tmp_path / "cache").input_key(_program(module))
    assert key.result() == _key_in_memory(tmp_path, module)
    assert reads == []


def test_another_checkpoint_of_the_same_shapes_is_a_new_input(tmp_path):
    cache = PassCache(tmp_path / "cache")
    seen = cache.input_key(_program(_module(_save(tmp_path / "a.pth", seed=0))))
    seen.result()
    seen.mark()
    other = cache.input_key(_program(_module(_save(tmp_path / "b.pth", seed=1))))
    assert not other.seen
    assert other.result() != seen.result()


def test_an_unreadable_file_falls_back_to_memory_unless_the_weight_changed(tmp_path, monkeypatch):
    monkeypatch.setattr(input_key, "_read_digest", lambda fd, offset, size: None)
    path = _save(tmp_path / "w.pth", seed=0)
    module = _module(path)
    key = PassCache(tmp_path / "cache").input_key(_program(module))
    assert key.result() == _key_in_memory(tmp_path, module)

    module = _module(path)
    key = PassCache(tmp_path / "cache2").input_key(_program(module))
    with torch.no_grad():
        module.weight.add_(1.0)  # its bytes as they were are gone: no key, nothing cached
    with pytest.raises(hashing.Unhashable, match="changed in place"):
        key.result()


def _run(cache: PassCache, module: torch.nn.Module, out: Path):
    reg = load_registry()
    passes = [reg["export"](), reg["to-edge"](), reg["to-executorch"](), reg["emit"](path=str(out))]
    return PassManager(passes, registry=reg).run(_program(module), cache=cache)


def test_a_cold_run_looks_nothing_up_marks_its_input_and_a_re_run_restores(tmp_path, monkeypatch):
    path = _save(tmp_path / "w.pth", seed=0)
    cache = PassCache(tmp_path / "cache")
    looked_up: list[str] = []
    header = PassCache.read_header
    monkeypatch.setattr(
        PassCache, "read_header", lambda self, key: looked_up.append(key) or header(self, key)
    )
    first = _run(cache, _module(path), tmp_path / "a.pte")
    assert not any(r.cached for r in first.records)
    assert looked_up == []  # nothing to find: not looked for
    markers = list((cache.directory / input_key.MARKERS).iterdir())
    assert len(markers) == 1

    again = _run(cache, _module(path), tmp_path / "b.pte")
    assert [r.cached for r in again.records] == [True, True, True, False]
    assert (tmp_path / "a.pte").read_bytes() == (tmp_path / "b.pte").read_bytes()
    cache.clear()
    assert not markers[0].exists()


def test_an_eager_result_does_not_wait_for_the_weights_digests(tmp_path, monkeypatch):
    """The first pass's result (EAGER: a key, no payload) is staged once the key is known:
    the file reads may still be going on when the next pass starts."""
    import threading

    from pteflow.passes.observers import PassObserver

    export_started = threading.Event()
    read = input_key._read_digest
    waited: list[bool] = []

    def after_export_starts(fd, offset, size):
        waited.append(export_started.wait(timeout=30))
        return read(fd, offset, size)

    class Starts(PassObserver):
        def started(self, rank, pass_):
            if pass_.name == "export":
                export_started.set()

    monkeypatch.setattr(input_key, "_read_digest", after_export_starts)
    reg = load_registry()
    passes = [
        reg["override-dtype"](),
        reg["export"](),
        reg["to-edge"](),
        reg["to-executorch"](),
        reg["emit"](path=str(tmp_path / "a.pte")),
    ]
    path = _save(tmp_path / "w.pth", seed=0)
    cache = PassCache(tmp_path / "cache")
    first = PassManager(passes, registry=reg).run(
        _program(_module(path)), cache=cache, observers=[Starts()]
    )
    assert waited == [True]  # the read waited for export, and export did not wait for it
    assert [r.name for r in first.records][:2] == ["override-dtype", "export"]
    again = PassManager(passes, registry=reg).run(_program(_module(path)), cache=cache)
    assert [r.cached for r in again.records] == [True, True, True, True, False]


def test_the_oldest_markers_go_over_the_cap(tmp_path):
    markers = tmp_path / input_key.MARKERS
    markers.mkdir()
    for age in range(5):
        (markers / f"m{age}").touch()
        os.utime(markers / f"m{age}", (1000 + age, 1000 + age))
    input_key.prune_markers(tmp_path, keep=3)
    assert sorted(p.name for p in markers.iterdir()) == ["m2", "m3", "m4"]
    input_key.prune_markers(tmp_path / "absent", keep=0)  # nothing there: nothing to do
