"""The warm path: an unchanged re-run writes the cached ``.pte`` without lowering again.

The pass cache (``pteflow.passes.cache``) restores the longest cached prefix of a run;
the last pass, ``emit``, is not cacheable (it writes a file), so a re-run would still
decode the final program, import ExecuTorch's compiler and run ``emit``. Here, at the
driver level, two more entries go into the same cache directory (same store, same
authentication, same eviction):

* the **full run**: keyed by the chain key of every pass (``emit`` without its path),
  it holds the ``.pte`` bytes and what the summary and report show (the records, the
  arbitration). A hit writes the bytes to ``-o`` and runs nothing.
* the **verdict**: keyed by the ``.pte``'s sha256, the reference's key (the input's
  chain key up to the reference: the eager model, or the quantized one) with the
  verification inputs, and the tolerance; it holds a passed verification. A hit is
  reported as ``verified (cached)``; otherwise the restored ``.pte`` is verified again.

Neither lookup imports ``executorch.exir``: the keys come from the input program's hash
and the passes' options and sources, exactly as the pass cache's do.
"""

from __future__ import annotations

import functools
import hashlib
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from pteflow.ir import hashing

#: the emit path is not part of the run's key: the same bytes go to any -o
_NEUTRAL_PATH = "model.pte"


def _derived(kind: str, *parts: Any) -> str:
    return hashlib.sha256(
        hashing.canonical((f"pteflow-driver-{kind}", *parts)).encode()
    ).hexdigest()


@attrs.frozen
class WarmKeys:
    """The keys of one run: the full run's, and the chain key per planned pass."""

    run: str
    chain: tuple[str | None, ...]

    def reference(self, rank: int, steps: Any, against: str) -> str:
        """The key of the verification reference: the program after pass ``rank`` (or the
        input when -1) fed ``steps``; named ``against`` (eager / quantized eager)."""
        base = self.chain[rank] if rank >= 0 else self.chain[0]
        return _derived("reference", base, rank, hashing.canonical(list(steps)), against)


def run_keys(ordered: Sequence[Any], first: str) -> WarmKeys | None:
    """The keys of a run of ``ordered`` on the input keyed ``first``, or None when it
    cannot be a full hit (a pass that is not cacheable besides a final ``emit``)."""
    from pteflow.passes.cache import chain_keys, pass_key

    if not ordered or ordered[-1].name != "emit":
        return None
    chain = tuple(chain_keys(first, tuple(ordered)))
    if any(k is None for k in chain[:-1]) or len(chain) < 2:
        return None
    emit = ordered[-1]
    try:
        last = pass_key(chain[-2], attrs.evolve(emit, path=_NEUTRAL_PATH))
    except hashing.Unhashable:
        return None
    return WarmKeys(_derived("run", last), chain)


@attrs.frozen
class StoredArbitration:
    """The partition arbitration of the run that wrote the ``.pte``, as it was shown."""

    stored: Any
    text: str

    def render(self) -> str:
        return self.text

    def to_json(self) -> Any:
        return self.stored


@attrs.frozen
class FullHit:
    """What the full-run entry holds."""

    pte: bytes
    records: tuple[Any, ...]
    arbitration: Mapping[str, Any] | None
    arbitration_text: str | None
    constants: Any = None  # the report's constant names (driver inspect)
    metadata: Any = None  # the constant methods the .pte holds (read once, when it was made)
    planned: Any = None  # the plan of this run (set by look_up)
    load_s: float = 0.0

    def program(self) -> Any:
        """A stand-in for the final program: only what the summary reads (its metadata)."""
        import types

        from pteflow.passes.partition.arbitration import ARBITRATION

        metadata = {}
        if self.arbitration_text is not None:
            metadata[ARBITRATION] = StoredArbitration(self.arbitration, self.arbitration_text)
        return types.SimpleNamespace(metadata=metadata)


def load_full_hit(cache: Any, keys: WarmKeys) -> FullHit | None:
    """The stored full run, or None (absent, unreadable: a warning was logged)."""
    from pteflow.passes.cache import CorruptEntry, blobs
    from pteflow.passes.manager import PassRecord

    try:
        found = cache.read(keys.run)
    except FileNotFoundError:
        return None
    except CorruptEntry as e:
        cache.drop(keys.run, str(e))
        return None
    header, payload = found
    info = header.get("full_run") or {}
    try:  # the .pte as pieces of the blobs the pass entries share
        payload = blobs.loads(zlib.decompress(payload), cache.blobs)["artifact"]["pte"]
    except Exception as e:  # a missing or altered blob, a damaged payload
        cache.drop(keys.run, f"its .pte cannot be read back ({type(e).__name__}: {e})")
        return None
    if hashlib.sha256(payload).hexdigest() != info.get("pte_sha256"):
        cache.drop(keys.run, "the stored .pte does not match its digest")
        return None
    try:
        # as the pass cache's restored records: they took no time in this run
        restored = {"cached": True, "wall_s": 0.0, "cpu_s": 0.0, "check_s": 0.0}
        records = tuple(PassRecord(**{**r, **restored}) for r in info["records"])
    except (KeyError, TypeError):
        cache.drop(keys.run, "the stored records do not match this version")
        return None
    if len(records) != len(keys.chain):
        return None
    return FullHit(
        payload,
        records,
        info.get("arbitration"),
        info.get("arbitration_text"),
        info.get("constants"),
        info.get("metadata"),
    )


def look_up(
    cache: Any, manager: Any, program: Any, pte: Path | None
) -> tuple[Callable[[], WarmKeys | None], FullHit | None]:
    """The run's keys (a function: a cold run's are taken while it runs, and are asked for
    once it has) and its stored full run (None: none, no cache, or no ``.pte``)."""
    if cache is None or pte is None:
        return lambda: None, None
    w0 = time.perf_counter()
    planned = manager.plan(start_level=program.level, initial_facts=program.facts)
    ordered = planned.ordered_passes()
    try:  # the run's session takes this first key over (one input is hashed once)
        first = cache.input_key(program, keep=True)
    except Exception:  # an unhashable input: the session says why in its notes
        return lambda: None, None

    @functools.cache
    def keys() -> WarmKeys | None:
        try:
            return run_keys(ordered, first.result())
        except hashing.Unhashable:
            return None

    if not first.seen:  # the cache holds nothing for this input
        return keys, None
    full = load_full_hit(cache, found) if (found := keys()) is not None else None
    if full is not None:
        full = attrs.evolve(full, planned=planned, load_s=time.perf_counter() - w0)
    return keys, full


@attrs.frozen
class PreparedRun:
    """What ``store_full_run`` keeps of the final program, read while it is alive (the
    driver may release it before the ``.pte`` is checked): the ``.pte``'s hash (taken
    from the written file, on a thread of its own) and its pieces encoded as references
    to blobs already in the store."""

    pte_digest: Any  # file_digest.FileDigest
    raw: bytes
    sizes: Mapping[str, int]


def prepare_full_run(
    cache: Any, keys: WarmKeys | None, program: Any, written: Path
) -> PreparedRun | None:
    """The full-run entry's body, from ``program`` and the file ``written`` that emit
    wrote from it (None: no cache, not an EXECUTORCH program, or its pieces could not be
    encoded; best effort, as storing is)."""
    import contextlib

    from pteflow.ir import Level
    from pteflow.passes.cache import blobs, codec

    from .file_digest import FileDigest

    if cache is None or keys is None or program.level != Level.EXECUTORCH:
        return None
    with contextlib.suppress(Exception):
        # the bytes emit wrote, read from the program that holds them (no copy of the file)
        value = codec.pte_value(program)
        # the payloads' digests the cache's writer took (``cache.digests``): not re-hashed
        raw, sizes = blobs.dumps(value, cache.blobs.put, cache.digests, codec.shared(value))
        return PreparedRun(FileDigest(written), raw, sizes)
    return None


def store_full_run(
    cache: Any,
    keys: WarmKeys,
    pte: Path,
    prepared: PreparedRun | None,
    result: Any,
    verification: Any,
    constants: Any,
    metadata: Any = None,
) -> None:
    """Store a finished run's ``.pte`` and what its summary shows (best effort); never
    that of a failed verification."""
    import contextlib
    import os

    from .summary import arbitration

    if prepared is None or not pte.exists() or not (verification is None or verification.ok):
        return
    digest = prepared.pte_digest.result()
    if digest is None:
        return
    records, claimed = result.records, arbitration(result.program)
    header = {
        "pass": "driver: full run",
        "created": time.time(),
        "level": "EXECUTORCH",
        "full_run": {
            "pte_sha256": digest,
            "records": [r.to_json() for r in records],
            "arbitration": claimed.to_json() if claimed else None,
            "arbitration_text": claimed.render() if claimed else None,
            "constants": constants,
            "metadata": metadata,
        },
        "blobs": dict(prepared.sizes),  # eviction keeps them while this entry refers to them
    }
    with contextlib.suppress(Exception):
        tmp = cache.write_tmp(keys.run, header, zlib.compress(prepared.raw, 6))
        try:
            os.replace(tmp, cache.path(keys.run))
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()


def verdict_key(
    cache: Any,
    keys: WarmKeys | None,
    pte: Path,
    model: Any,
    quantized: Any,
    pte_digest: Any = None,
) -> str | None:
    """The key of the verdict on ``pte`` against the run's reference at its tolerance
    (None without a cache, or when the verification inputs cannot be hashed).
    ``pte_digest``: a ``FileDigest`` already taken of the file, if any."""
    if cache is None or keys is None:
        return None
    rank = quantized.rank if quantized is not None else -1
    against = quantized.label if quantized is not None else "eager"
    try:
        reference = keys.reference(rank, model.steps, against)
    except Exception:  # inputs that cannot be hashed: verified every run
        return None
    digest = pte_digest.result() if pte_digest is not None else None
    if digest is None:
        with open(pte, "rb") as f:  # in chunks: no copy of the whole file
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    return _derived("verdict", digest, reference, repr(float(model.tolerance)))


@attrs.frozen
class CachedVerification:
    """A passed verification of the very same ``.pte``, read back from the cache."""

    stored: Mapping[str, Any]
    text: str

    ok = True
    failed = False
    skipped = None
    status = "ok"

    @property
    def max_abs_diff(self) -> float:
        return float(self.stored.get("max_abs_diff") or 0.0)

    def why_failed(self) -> str:
        return ""

    def summary(self) -> str:
        first, _, rest = self.text.partition("\n")
        return f"{first} [verified (cached)]" + (f"\n{rest}" if rest else "")

    def to_json(self) -> dict[str, Any]:
        return {**self.stored, "cached": True}


def load_verdict(cache: Any, key: str) -> CachedVerification | None:
    from pteflow.passes.cache import CorruptEntry

    try:
        header = cache.read_header(key)
    except (CorruptEntry, OSError):
        return None
    info = (header or {}).get("verdict")
    if not info or info.get("json", {}).get("status") != "ok":
        return None
    return CachedVerification(info["json"], info["summary"])


def store_verdict(cache: Any, key: str, verification: Any) -> None:
    """Keep a passed verification (a failed or skipped one is redone every run)."""
    import contextlib
    import os

    if not verification.ok or isinstance(verification, CachedVerification):
        return
    header = {
        "pass": "driver: verification",
        "created": time.time(),
        "level": "EXECUTORCH",
        "verdict": {"json": verification.to_json(), "summary": verification.summary()},
    }
    with contextlib.suppress(Exception):
        tmp = cache.write_tmp(key, header, b"")
        try:
            os.replace(tmp, cache.path(key))
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()


def full_hit_result(full: FullHit, pte: Path, progress: Any, cache_dir: Path) -> Any:
    """The run's result when the cache holds this very run: the .pte is written, no pass
    runs (``executorch.exir`` is not even imported); the records are the stored ones."""
    from pteflow.passes.emit.emit import write_atomically
    from pteflow.passes.manager import RunResult

    write_atomically(pte, full.pte)
    records = []
    planned, load_s = full.planned, full.load_s
    for p, stored in zip(planned.ordered_passes(), full.records, strict=True):
        record = attrs.evolve(stored, options=p.spec()[len(p.name) :])  # this run's -o
        progress.started(record.position, p)
        progress.finished(record.position, p, record)
        records.append(record)
    n = len(records)
    stats: dict[str, Any] = {"full_hit": True, "passes": n, "cacheable": n, "hits": n}
    stats |= {"misses": 0, "hit_rate": 1.0, "stored": 0, "load_s": load_s, "store_s": 0.0}
    stats["notes"] = []
    import contextlib
    import json

    from pteflow.passes.cache import LAST_RUN

    with contextlib.suppress(OSError):  # `driver cache info`'s "last run", as a session does
        write_atomically(cache_dir / LAST_RUN, json.dumps({"time": time.time(), **stats}).encode())
    return RunResult(full.program(), tuple(records), planned, 0.0, stats)


def verify_or_recall(
    pte: Path,
    model: Any,
    quantized: Any,
    keys: WarmKeys | None,
    checks: Any,
    registry: Any,
    cache: Any,
    pte_digest: Any = None,
) -> Any:
    """The verification of ``pte``: the cached verdict on these very bytes against this
    reference at this tolerance, else ``verify_run`` (a passed one is then cached).
    ``pte_digest``: a ``FileDigest`` already taken of the file, if any."""
    from .verify import verify_run

    verdict = verdict_key(cache, keys, pte, model, quantized, pte_digest)
    found = load_verdict(cache, verdict) if verdict else None
    if found is not None:
        return found
    verification = verify_run(pte, model, quantized, checks=checks, registry=registry, cache=cache)
    if verdict is not None:
        store_verdict(cache, verdict, verification)
    return verification
