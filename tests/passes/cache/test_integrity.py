"""A cache that cannot be poisoned: authenticated entries, key == address, retry from scratch.

The small MLP through XNNPACK (tests/passes/cache/test_cache.py's pipeline). Entries are
edited the way an attacker (or a stray ``cp``) would: every checksum the file format has
is made to match; only the HMAC, which needs the user's key, cannot be.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import stat
from pathlib import Path
from typing import ClassVar

import attrs
import pytest

from pteflow.ir import Level, Program
from pteflow.ir.errors import PassFailedError, UnavailableError
from pteflow.passes import Pass, PassContext, PassInfo, PassResult
from pteflow.passes.cache import MAGIC, PassCache

from .test_cache import cached, run

pytestmark = pytest.mark.usefixtures("every_result_stored")


@pytest.fixture
def messages():
    return []


@pytest.fixture
def cache(tmp_path, messages) -> PassCache:
    return PassCache(tmp_path / "cache", log=messages.append)


def entries_by_pass(cache: PassCache) -> dict[str, Path]:
    """pass name -> its entry file (the header's "pass" is the pass's spec)."""
    out = {}
    for path in cache.entries_dir.glob("*/*.entry"):
        header, _ = split(path.read_bytes())
        out[header["pass"].split("{")[0]] = path
    return out


def split(data: bytes) -> tuple[dict, bytes]:
    """(header, payload) of an entry file, in either the old (v1) or the current layout."""
    size = int.from_bytes(data[len(MAGIC) : len(MAGIC) + 8], "big")
    start = len(MAGIC) + 8 + 32  # v1: sha256(header); now: the HMAC
    return json.loads(data[start : start + size]), data[start + size :]


def forge(path: Path, payload: bytes) -> None:
    """Replace an entry's payload, fixing every checksum that needs no key."""
    data = path.read_bytes()
    header, _ = split(data)
    header["payload_bytes"] = len(payload)
    header["payload_sha256"] = hashlib.sha256(payload).hexdigest()
    raw = json.dumps(header, sort_keys=True).encode()
    check = data[len(MAGIC) + 8 : len(MAGIC) + 40]
    if MAGIC == b"PTEFLOWC1\n":  # the unauthenticated layout: its checksum is forgeable
        check = hashlib.sha256(raw).digest()
    path.write_bytes(MAGIC + len(raw).to_bytes(8, "big") + check + raw + payload)


class _Touch:
    """Unpickling this creates a file: proof that a payload was unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_forged_payload_is_never_unpickled(tmp_path, cache, messages):
    _first, pte1 = run(cache, tmp_path / "a.pte")
    marker = tmp_path / "unpickled"
    for path in cache.entries_dir.glob("*/*.entry"):
        forge(path, pickle.dumps(_Touch(marker)))
    again, pte2 = run(cache, tmp_path / "b.pte")
    assert not marker.exists()
    assert not any(cached(again).values()) and pte2 == pte1
    assert any("fails authentication" in m for m in messages)


def test_entries_of_another_user_key_are_dropped_unread(tmp_path, cache, messages, monkeypatch):
    run(cache, tmp_path / "a.pte")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "someone-else"))
    again, _ = run(PassCache(cache.directory, log=messages.append), tmp_path / "b.pte")
    assert not any(cached(again).values())
    assert any("fails authentication" in m for m in messages)


def test_an_entry_copied_over_another_key_is_dropped(tmp_path, cache, messages):
    _first, pte1 = run(cache, tmp_path / "a.pte")
    by_pass = entries_by_pass(cache)
    # what `cp` of one entry over another leaves: the EDGE program under to-executorch's key
    by_pass["to-executorch"].write_bytes(by_pass["to-edge"].read_bytes())
    again, pte2 = run(cache, tmp_path / "b.pte")
    assert pte2 == pte1
    assert not cached(again)["to-executorch"] and cached(again)["convert-to-linear"]
    assert any("copied or renamed over another entry" in m for m in messages)
    third, pte3 = run(cache, tmp_path / "c.pte")
    assert pte3 == pte1 and cached(third)["to-executorch"]


def test_a_pass_failing_on_a_restored_program_is_retried_from_scratch(tmp_path, cache, messages):
    _first, pte1 = run(cache, tmp_path / "a.pte")
    by_pass = entries_by_pass(cache)
    # a validly signed entry that holds the wrong program: export's ATEN program stored
    # as partition-xnnpack's result (what a bug in storing or restoring would leave);
    # convert-to-linear changes nothing, so its entry is an alias of that one
    target = by_pass["partition-xnnpack"]
    key = target.stem
    _header, payload = cache.read(by_pass["export"].stem)
    header, _ = split(target.read_bytes())
    os.replace(cache.write_tmp(key, header, payload), target)
    by_pass["to-executorch"].unlink()  # resume from the poisoned entry
    again, pte2 = run(cache, tmp_path / "b.pte")
    assert pte2 == pte1
    assert not any(cached(again).values())  # the retry read nothing from the cache
    assert [m for m in messages if "failed on a restored program" in m], messages
    assert any("ran again without the cache" in m for m in messages)
    third, pte3 = run(cache, tmp_path / "c.pte")  # the retry stored sound entries
    assert pte3 == pte1 and cached(third)["to-executorch"]


def test_the_key_and_the_cache_directories_are_private(tmp_path, cache):
    run(cache, tmp_path / "a.pte")
    key = Path(os.environ["XDG_CONFIG_HOME"]) / "pteflow" / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    for d in (cache.directory, cache.entries_dir, *cache.entries_dir.iterdir()):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    for f in cache.entries_dir.glob("*/*.entry"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_a_key_others_can_read_is_refused(tmp_path, cache):
    from pteflow.ir.errors import UserError
    from pteflow.passes.cache import key_path, user_key

    user_key()
    key_path().chmod(0o644)
    with pytest.raises(UserError, match="not private to you"):
        cache.check_writable()


@attrs.frozen
class _NoDeviceHere(Pass):
    """Stands for a backend whose device cannot be created on this machine (QNN's HTP)."""

    info: ClassVar[PassInfo] = PassInfo(name="no-device-here", level_in=Level.EDGE)

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        raise UnavailableError("no HTP device here")


def test_an_unavailable_backend_after_a_restored_prefix_is_not_retried(tmp_path, cache, messages):
    """No SDK device is not a bad entry: retrying from scratch would recompute the whole
    prefix and drop sound entries, then fail the same way."""
    run(cache, tmp_path / "a.pte")
    with pytest.raises(PassFailedError, match="no HTP device here"):
        run(cache, tmp_path / "b.pte", extra=[_NoDeviceHere()])
    assert not [m for m in messages if "failed on a restored program" in m], messages
    again, _ = run(cache, tmp_path / "c.pte")  # the entries are all still there
    assert all(r.cached for r in again.records if r.name != "emit")
