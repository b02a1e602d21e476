"""A content-addressed cache of pass results, so a re-run starts after its longest cached prefix.

Keys form a chain over the scheduled passes, so the longest cached prefix is found
without running or loading anything::

    key_0 = program_hash(input)                       structure + weights + data
    key_k = sha256(key_{k-1}, pass class, options, source_hash(pass class),
                   pass.cache_inputs(ctx), versions of torch/executorch/torchao/pteflow)

``source_hash`` covers the module defining the pass and every own-code module it reaches
(helpers, base classes, pteflow's ir), read from disk each time: an edited pass misses.
A pass whose contract says ``cacheable=False`` (emit: it writes a file) is never cached,
and no pass after it is either (its output is not a function of the key).

Entries are single files ``entries/<key[:2]>/<key>.entry``::

    MAGIC | header length (8 bytes) | sha256(header) | header (JSON) | payload (pickle)

The header holds the pass's PassRecord (so a cached pass still shows its op counts),
the level, and the payload's length and sha256; the payload is the program, per level:

    EAGER       nothing: the key stands for it (a later ATEN entry is where a run resumes)
    ATEN        torch.export.save bytes per method
    EDGE        executorch.exir.serde bytes per method (delegates included), the
                constant methods and the EdgeCompileConfig
    EXECUTORCH  the .pte bytes and the serde bytes of the execution programs

(serde loses unbacked symbol ranges and parameters' ``requires_grad``; both are stored
beside its bytes and put back, see ``_restore_ranges``), plus the Program's facts (by
name), metadata, example inputs and dynamic shapes.
A pass that changed nothing (``modified=False``) stores an alias to its input's entry.

Writes go to a temporary file renamed into place, and only once the manager has checked
the claims of the pass that made them (a FactError later in the run leaves no entry).
Reads check both checksums; a truncated or corrupt entry is deleted, reported as a
warning, and recomputed. The directory is capped in size: least recently used entries
(by mtime, refreshed on every hit) go first.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import logging
import os
import pickle
import struct
import sys
import tempfile
import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from pteflow.ir import Fact, Level, Program, facts, hashing
from pteflow.ir.errors import UserError

from .base import Pass, PassContext

MAGIC = b"PTEFLOWC1\n"
_HEAD = struct.Struct(">Q32s")
DEFAULT_MAX_BYTES = 10 * 2**30
LAST_RUN = "last_run.json"
_STALE_TMP_S = 3600.0


class CacheWarning(UserWarning):
    """A cache entry could not be read or written (the run goes on without it)."""


class CorruptEntry(Exception):
    """An entry failed its checksums or could not be decoded."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pteflow``, else ``~/.cache/pteflow``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pteflow"


def parse_size(text: str) -> int:
    """``'500M'``, ``'10G'``, ``'1024'`` -> bytes.

    Raises:
        UserError: not a size.
    """
    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    t = text.strip().upper().removesuffix("B")
    unit = t[-1:] if t[-1:] in units and t[-1:] else ""
    try:
        value = float(t[: -len(unit)] if unit else t)
    except ValueError:
        raise UserError(f"cache size {text!r} is not a size; use e.g. 500M or 10G") from None
    if value <= 0:
        raise UserError(f"cache size must be positive, got {text!r}")
    return int(value * units[unit])


# --------------------------------------------------------------------------- keys


def pass_key(previous: str, p: Pass, ctx: PassContext) -> str:
    """The chain key of ``p`` run on the program keyed ``previous``."""
    cls = type(p)
    parts = (
        previous,
        f"{cls.__module__}.{cls.__qualname__}",
        hashing.canonical(p.options()),
        hashing.source_hash(cls),
        hashing.canonical(p.cache_inputs(ctx)),
        hashing.versions(),
    )
    return hashlib.sha256(hashing.canonical(parts).encode()).hexdigest()


# --------------------------------------------------------------------------- payloads


def _encode_artifact(program: Program) -> Any:
    import torch

    if program.level == Level.ATEN:
        out = {}
        for method, ep in program.exported_programs().items():
            buf = io.BytesIO()
            torch.export.save(ep, buf)
            out[method] = buf.getvalue()
        return out
    from executorch.exir.serde.serialize import serialize

    def serde(ep: Any) -> tuple[bytes, bytes, bytes, bytes, dict[str, Any]]:
        art = serialize(ep)
        ranges = {str(k): (str(v.lower), str(v.upper)) for k, v in ep.range_constraints.items()}
        grads = {
            "state": sorted(k for k, v in ep.state_dict.items() if v.requires_grad),
            "nodes": sorted(
                n.name
                for n in ep.graph.nodes
                if n.op == "placeholder" and getattr(n.meta.get("val"), "requires_grad", False)
            ),
        }
        extra = {"ranges": ranges, "requires_grad": grads}
        return (art.exported_program, art.state_dict, art.constants, art.example_inputs, extra)

    manager = program.artifact
    methods = {m: serde(manager.exported_program(m)) for m in sorted(manager.methods)}
    if program.level == Level.EDGE:
        return {
            "methods": methods,
            "config_methods": manager._config_methods,
            "compile_config": _encode_config(manager.compile_config),
        }
    if getattr(manager, "_tensor_data", None):
        raise hashing.Unhashable("the program keeps tensor data outside the .pte")
    return {"methods": methods, "config_methods": manager._config_methods, "pte": manager.buffer}


def _op_name(op: Any) -> tuple[str, str]:
    return (op._schema.name, op._overloadname)


def _op(name: tuple[str, str]) -> Any:
    import torch

    ns, op = name[0].split("::")
    return getattr(getattr(getattr(torch.ops, ns), op), name[1])


def _encode_config(config: Any) -> dict[str, Any]:
    """An EdgeCompileConfig as plain data (its op lists hold unpicklable OpOverloads)."""
    import dataclasses

    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in ("_core_aten_ops_exception_list", "preserve_ops"):
            value = [_op_name(op) for op in value or ()]
        out[f.name] = value
    return out


def _decode_config(data: dict[str, Any]) -> Any:
    from executorch.exir import EdgeCompileConfig

    values = dict(data)
    for name in ("_core_aten_ops_exception_list", "preserve_ops"):
        if name in values:
            values[name] = [_op(n) for n in values[name]]
    return EdgeCompileConfig(**values)


#: Module prefixes whose import may register ops a stored graph uses (custom SDPA, ...).
_OP_LIBRARIES = ("executorch.", "torchao.", "pteflow.")


def _libraries() -> list[str]:
    return sorted(m for m in list(sys.modules) if m.startswith(_OP_LIBRARIES))


def _import_libraries(names: Iterable[str]) -> None:
    """Import what the storing run had imported: the skipped passes may have registered
    the custom ops (e.g. llama::custom_sdpa) the stored graph calls."""
    for name in names:
        if name not in sys.modules:
            with contextlib.suppress(Exception):
                importlib.import_module(name)


def _bound(text: str) -> Any:
    from torch.utils._sympy.numbers import int_oo

    return {"int_oo": int_oo, "-int_oo": -int_oo}.get(text) or int(text)


def _restore_ranges(ep: Any, ranges: dict[str, tuple[str, str]]) -> Any:
    """Put back the value ranges of the symbols serde deserialized with other bounds.

    Upstream trap (executorch 1.5.1 serde): unbacked symbols (``u0``: the KV-cache
    position read from a tensor) come back with a lower bound of 2 instead of 0, and
    ``to_executorch``'s constraint-based memory planning then bounds a dynamic dim one
    lower (126 instead of 127 rows for max_seq_len 128): a different, wrong .pte.
    """
    from torch.utils._sympy.value_ranges import ValueRanges

    env = None
    for node in ep.graph.nodes:
        val = node.meta.get("val")
        mode = getattr(val, "fake_mode", None)
        if mode is not None and mode.shape_env is not None:
            env = mode.shape_env
            break
    for sym in list(ep.range_constraints):
        if str(sym) in ranges:
            lo, hi = ranges[str(sym)]
            ep.range_constraints[sym] = ValueRanges(_bound(lo), _bound(hi))
    if env is not None:
        for sym in list(env.var_to_range):
            if str(sym) in ranges:
                lo, hi = ranges[str(sym)]
                env.var_to_range[sym] = ValueRanges(_bound(lo), _bound(hi))
    return ep


def _restore_requires_grad(ep: Any, grads: dict[str, list[str]]) -> None:
    """Upstream trap (serde): parameters come back with ``requires_grad=False``, and the
    emitter writes that flag into the .pte, so the bytes would differ from a fresh run."""
    import torch

    for name in grads["state"]:
        tensor = ep.state_dict.get(name)
        if tensor is not None and not tensor.requires_grad:
            ep.state_dict[name] = torch.nn.Parameter(tensor.detach(), requires_grad=True)
    wanted = set(grads["nodes"])
    for node in ep.graph.nodes:
        val = node.meta.get("val")
        if node.op == "placeholder" and node.name in wanted and not val.requires_grad:
            val.requires_grad_(True)


@contextlib.contextmanager
def _quiet_serde() -> Iterator[None]:
    """Silence serde's per-symbol "did not appear in the graph" warnings (one per unbacked
    symbol of a KV-cache model; harmless: the symbols were only used in shape checks)."""
    logger = logging.getLogger("executorch.exir.serde.export_serialize")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _decode_artifact(level: Level, data: Any) -> Any:
    import torch

    if level == Level.ATEN:
        return {m: torch.export.load(io.BytesIO(b)) for m, b in data.items()}
    from executorch.exir import EdgeProgramManager, ExecutorchProgramManager
    from executorch.exir.serde.export_serialize import SerializedArtifact
    from executorch.exir.serde.serialize import deserialize

    eps = {}
    with _quiet_serde():
        for method, (*parts, extra) in data["methods"].items():
            ep = deserialize(SerializedArtifact(*parts))
            _restore_ranges(ep, extra["ranges"])
            _restore_requires_grad(ep, extra["requires_grad"])
            eps[method] = ep
    if level == Level.EDGE:
        return EdgeProgramManager(
            eps,
            constant_methods=data["config_methods"],
            compile_config=_decode_config(data["compile_config"]),
        )
    manager = ExecutorchProgramManager.__new__(ExecutorchProgramManager)
    # What emit, the views and the invariants read; the emitter output is not restored
    # (executorch_program / debug_handle_map are unavailable on a cached program).
    manager._execution_programs = eps
    manager._config_methods = data["config_methods"]
    manager._named_data = None
    manager._emitter_output = None
    manager._pte_data = data["pte"]
    manager._tensor_data = {}
    manager._buffer = data["pte"]
    manager._etrecord = None
    return manager


def _fact_table(extra: Iterable[Fact]) -> dict[str, Fact]:
    table = {v.name: v for v in vars(facts).values() if isinstance(v, Fact)}
    table.update({f.name: f for f in extra})
    return table


# --------------------------------------------------------------------------- the cache


@attrs.frozen
class CacheInfo:
    directory: Path
    entries: int
    total_bytes: int
    max_bytes: int
    last_run: dict[str, Any] | None


class PassCache:
    """A directory of pass results; see the module docstring.

    ``log`` receives warnings (corrupt entries, results that cannot be stored); the
    default issues a ``CacheWarning``.
    """

    def __init__(
        self,
        directory: Path | str | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        log: Callable[[str], None] | None = None,
    ):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.max_bytes = max_bytes
        self.log = log or (lambda msg: warnings.warn(msg, CacheWarning, stacklevel=3))

    # ---------------------------------------------------------------- layout

    @property
    def entries_dir(self) -> Path:
        return self.directory / "entries"

    def path(self, key: str) -> Path:
        return self.entries_dir / key[:2] / f"{key}.entry"

    def check_writable(self) -> None:
        """Create the directory, or raise UserError naming it."""
        try:
            self.entries_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.entries_dir, prefix=".probe.")
            os.close(fd)
            os.unlink(tmp)
        except OSError as e:
            raise UserError(
                f"cache directory {self.directory} is not writable ({e.strerror}); "
                "give another with --cache-dir, or --no-cache"
            ) from None

    def _files(self) -> list[Path]:
        if not self.entries_dir.is_dir():
            return []
        return [p for p in self.entries_dir.glob("*/*.entry") if p.is_file()]

    # ---------------------------------------------------------------- entries

    def read_header(self, key: str) -> dict[str, Any] | None:
        """The entry's header, or None if absent. Raises CorruptEntry."""
        try:
            with open(self.path(key), "rb") as f:
                return self._header(f)
        except FileNotFoundError:
            return None

    @staticmethod
    def _header(f: Any) -> dict[str, Any]:
        magic = f.read(len(MAGIC))
        if magic != MAGIC:
            raise CorruptEntry("bad magic")
        head = f.read(_HEAD.size)
        if len(head) != _HEAD.size:
            raise CorruptEntry("truncated header")
        size, digest = _HEAD.unpack(head)
        raw = f.read(size)
        if len(raw) != size or hashlib.sha256(raw).digest() != digest:
            raise CorruptEntry("header checksum mismatch")
        try:
            return json.loads(raw)
        except ValueError as e:
            raise CorruptEntry(f"header is not JSON: {e}") from None

    def read(self, key: str) -> tuple[dict[str, Any], bytes]:
        """Header and verified payload bytes. Raises FileNotFoundError, CorruptEntry."""
        with open(self.path(key), "rb") as f:
            header = self._header(f)
            payload = f.read()
        if len(payload) != header.get("payload_bytes"):
            raise CorruptEntry(
                f"payload is {len(payload)} bytes, header says {header.get('payload_bytes')}"
            )
        if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
            raise CorruptEntry("payload checksum mismatch")
        with contextlib.suppress(OSError):
            os.utime(self.path(key))  # least recently used = oldest mtime
        return header, payload

    def drop(self, key: str, why: str) -> None:
        self.log(f"pass cache: dropped corrupt entry {key[:12]} ({why}); recomputing it")
        with contextlib.suppress(OSError):
            self.path(key).unlink()

    def write_tmp(self, key: str, header: dict[str, Any], payload: bytes) -> Path:
        """Write an entry to a temporary file beside its final path (commit renames it)."""
        header = {**header, "payload_bytes": len(payload)}
        header["payload_sha256"] = hashlib.sha256(payload).hexdigest()
        raw = json.dumps(header, sort_keys=True, default=str).encode()
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:12]}.", suffix=".tmp", dir=final.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(MAGIC + _HEAD.pack(len(raw), hashlib.sha256(raw).digest()) + raw)
                f.write(payload)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Path(tmp)

    # ---------------------------------------------------------------- maintenance

    def evict(self) -> int:
        """Delete least recently used entries until under ``max_bytes``; also stale temp files."""
        now = time.time()
        for tmp in self.entries_dir.glob("*/.*.tmp") if self.entries_dir.is_dir() else ():
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > _STALE_TMP_S:
                    tmp.unlink()
        stats = []
        for p in self._files():
            with contextlib.suppress(OSError):
                st = p.stat()
                stats.append((st.st_mtime, st.st_size, p))
        total = sum(s for _, s, _ in stats)
        removed = 0
        for _mtime, size, p in sorted(stats):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                p.unlink()
                removed += 1
            total -= size
        return removed

    def info(self) -> CacheInfo:
        files = self._files()
        total = 0
        for p in files:
            with contextlib.suppress(OSError):
                total += p.stat().st_size
        last = None
        with contextlib.suppress(OSError, ValueError):
            last = json.loads((self.directory / LAST_RUN).read_text())
        return CacheInfo(self.directory, len(files), total, self.max_bytes, last)

    def clear(self) -> int:
        """Delete every entry (and the last-run record); return how many entries."""
        n = 0
        for p in self._files():
            with contextlib.suppress(OSError):
                p.unlink()
                n += 1
        if self.entries_dir.is_dir():
            for tmp in self.entries_dir.glob("*/.*.tmp"):
                with contextlib.suppress(OSError):
                    tmp.unlink()
        with contextlib.suppress(OSError):
            (self.directory / LAST_RUN).unlink()
        return n

    # ---------------------------------------------------------------- a run

    def session(
        self, ordered: Sequence[Pass], program: Program, upcoming: Sequence[Pass] = ()
    ) -> CacheSession:
        return CacheSession(self, tuple(ordered), program, tuple(upcoming))


def _same(a: Program, b: Program) -> bool:
    """``b`` holds exactly what ``a`` holds (the objects, not copies)."""
    return (
        a.level == b.level
        and a.artifact is b.artifact
        and a.facts == b.facts
        and a.metadata.keys() == b.metadata.keys()
        and all(a.metadata[k] is b.metadata[k] for k in a.metadata)
        and a.example_inputs.keys() == b.example_inputs.keys()
        and all(a.example_inputs[k] is b.example_inputs[k] for k in a.example_inputs)
        and a.dynamic_shapes.keys() == b.dynamic_shapes.keys()
        and all(a.dynamic_shapes[k] is b.dynamic_shapes[k] for k in a.dynamic_shapes)
    )


def _remove(paths: list[Path]) -> None:
    for p in paths:
        with contextlib.suppress(OSError):
            p.unlink()


class CacheSession:
    """One run's use of the cache: the chain of keys, the resume point, staged entries."""

    def __init__(
        self,
        cache: PassCache,
        ordered: tuple[Pass, ...],
        program: Program,
        upcoming: tuple[Pass, ...],
    ):
        self.cache = cache
        self.ordered = ordered
        self.hits = 0
        self.stored = 0
        self.load_s = 0.0
        self.store_s = 0.0
        self.notes: list[str] = []
        self._staged: list[tuple[Path, Path]] = []
        self._tmp_files: list[Path] = []
        # a failed run leaves no staged temp files behind
        self._finalizer = weakref.finalize(self, _remove, self._tmp_files)
        known = set(program.facts)
        for p in ordered:
            known |= p.contract.provides | p.contract.requires | p.contract.invalidates
        self._facts = _fact_table(known)
        self.keys: list[str | None] = self._chain(program, upcoming)

    def _chain(self, program: Program, upcoming: tuple[Pass, ...]) -> list[str | None]:
        keys: list[str | None] = [None] * len(self.ordered)
        try:
            key = hashing.program_hash(program)
        except Exception as e:  # an unhashable input only disables the cache
            self.notes.append(f"input program not hashable ({e}); nothing cached")
            return keys
        for rank, p in enumerate(self.ordered):
            if not p.contract.cacheable:
                break
            ctx = PassContext(position=rank, upcoming=self.ordered[rank + 1 :] + upcoming)
            try:
                key = pass_key(key, p, ctx)
            except Exception as e:
                self.notes.append(f"{p.name}: not cacheable ({e})")
                break
            keys[rank] = key
        return keys

    @property
    def cacheable(self) -> int:
        return sum(k is not None for k in self.keys)

    # ---------------------------------------------------------------- reading

    def headers(self, upto: int) -> list[dict[str, Any] | None]:
        """The stored headers (records) of the passes before rank ``upto``."""
        out: list[dict[str, Any] | None] = []
        for key in self.keys[:upto]:
            try:
                out.append(self.cache.read_header(key) if key else None)
            except CorruptEntry:
                out.append(None)
        return out

    def resume(self, program: Program) -> tuple[int, Program]:
        """The first rank to run and the program to run it on (the longest cached prefix)."""
        t0 = time.perf_counter()
        for rank in range(len(self.keys) - 1, -1, -1):
            key = self.keys[rank]
            if key is None:
                continue
            restored = self._load(key, program)
            if restored is not None:
                self.hits = rank + 1
                self.load_s = time.perf_counter() - t0
                return rank + 1, restored
        return 0, program

    def _load(self, key: str, program: Program, depth: int = 0) -> Program | None:
        try:
            header = self.cache.read_header(key)
        except CorruptEntry as e:
            self.cache.drop(key, str(e))
            return None
        if header is None or depth > len(self.keys):
            return None
        if header.get("alias"):
            return self._load(header["alias"], program, depth + 1)
        if not header.get("payload_bytes"):
            return None  # an EAGER entry: a key only
        try:
            header, payload = self.cache.read(key)
            data = pickle.loads(payload)
            names = data["facts"]
            if any(n not in self._facts for n in names):
                return None  # a fact this pipeline does not know: cannot restore faithfully
            _import_libraries(data.get("libraries", ()))
            level = Level[data["level"]]
            return Program(
                level,
                _decode_artifact(level, data["artifact"]),
                data["example_inputs"],
                data["dynamic_shapes"],
                data["metadata"],
                frozenset(self._facts[n] for n in names),
            )
        except FileNotFoundError:
            return None  # evicted or cleared meanwhile
        except Exception as e:  # any decoding failure means: do not use it
            self.cache.drop(key, f"{type(e).__name__}: {e}")
            return None

    # ---------------------------------------------------------------- writing

    def stage(
        self, rank: int, before: Program, after: Program, modified: bool, record: dict[str, Any]
    ) -> None:
        """Serialize the output of the pass at ``rank`` now; ``commit`` makes it visible."""
        key = self.keys[rank]
        if key is None:
            return
        t0 = time.perf_counter()
        try:
            self._stage(rank, key, before, after, modified, record)
        finally:
            self.store_s += time.perf_counter() - t0

    def _stage(
        self,
        rank: int,
        key: str,
        before: Program,
        after: Program,
        modified: bool,
        record: dict[str, Any],
    ) -> None:
        final = self.cache.path(key)
        if final.exists():
            with contextlib.suppress(OSError):
                os.utime(final)
            return
        header: dict[str, Any] = {
            "key": key,
            "pass": self.ordered[rank].describe(),
            "level": after.level.name,
            "record": record,
            "created": time.time(),
        }
        payload = b""
        try:
            if not modified and rank > 0 and self.keys[rank - 1] and _same(before, after):
                header["alias"] = self.keys[rank - 1]
            elif after.level != Level.EAGER:
                payload = pickle.dumps(
                    {
                        "level": after.level.name,
                        "facts": sorted(f.name for f in after.facts),
                        "metadata": dict(after.metadata),
                        "example_inputs": dict(after.example_inputs),
                        "dynamic_shapes": dict(after.dynamic_shapes),
                        "artifact": _encode_artifact(after),
                        "libraries": _libraries(),
                    },
                    protocol=5,
                )
            tmp = self.cache.write_tmp(key, header, payload)
        except Exception as e:  # a result we cannot store is just not cached
            self.notes.append(f"{self.ordered[rank].name}: result not stored ({e})")
            self.cache.log(
                f"pass cache: the result of {self.ordered[rank].describe()} is not stored "
                f"({type(e).__name__}: {e})"
            )
            return
        self._tmp_files.append(tmp)
        self._staged.append((tmp, final))

    def commit(self) -> None:
        """Make staged entries visible (rename into place): their claims were checked."""
        for tmp, final in self._staged:
            try:
                os.replace(tmp, final)
                self.stored += 1
            except OSError as e:
                self.cache.log(f"pass cache: cannot store {final.name}: {e}")
            with contextlib.suppress(ValueError):
                self._tmp_files.remove(tmp)
        self._staged = []

    def finish(self) -> dict[str, Any]:
        """Commit, evict over the cap, record this run's hit rate; return that record."""
        self.commit()
        self.cache.evict()
        looked_up = self.cacheable
        stats = {
            "time": time.time(),
            "passes": len(self.ordered),
            "cacheable": looked_up,
            "hits": self.hits,
            "misses": looked_up - self.hits,
            "hit_rate": self.hits / looked_up if looked_up else 0.0,
            "stored": self.stored,
            "load_s": self.load_s,
            "store_s": self.store_s,
            "notes": self.notes,
        }
        with contextlib.suppress(OSError):
            from .emit.write_pte import write_atomically

            write_atomically(self.cache.directory / LAST_RUN, json.dumps(stats).encode())
        return stats
