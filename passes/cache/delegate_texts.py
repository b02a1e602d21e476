"""Each delegate serialized once a run: an entry reuses the serde text an earlier entry of
the same run made of the same delegate.

A delegate (``LoweredBackendModule``) is the same object from the partitioner's result to
the final program: partition's entry, convert-to-linear's and to-executorch's all hold
it, and executorch's serde turns it into the same JSON text each time
(``GraphModuleSerializer.serialize_lowered_module``: its original program serialized and
turned into JSON, 37% of an XNNPACK Llama's EXECUTORCH entry serialization at stories
size, 58% at SmolLM2-135M's). ``serializing`` wraps
that method for one ``codec.encode``: a delegate whose text this run made already, and
that is unchanged since (``fingerprint``), gets that text; any other is serialized by
serde and remembered. The entries are what they were: the same text, stored in each.

A forked writer's child writes the texts it made to a temporary file and reports it
(``DelegateTexts.write``); the parent adopts it for the delegates it holds (``adopt``;
it reads nothing), and the next child reads the file when it needs a text. The parent
holds each delegate beside its file, so an id names one object for as long as the text
is kept. The session forgets them, files removed, when it finishes
(``PassCache.forget_held`` when a writer is abandoned).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pteflow.ir import Level, views

from . import strip


def fingerprint(delegate: Any) -> str:
    """What a delegate's text depends on that a pass could change in place: its backend,
    compile specs, payload size, named data keys and its original program's graph (each
    node's op, name, target, arguments' and users' counts and metadata keys), and which
    objects hold them."""
    original = delegate.original_module
    named = delegate.named_data_store_output
    parts: list[Any] = [
        delegate.backend_id,
        [(cs.key, bytes(cs.value)) for cs in delegate.compile_specs],
        len(delegate.processed_bytes),
        None if named is None else (len(named.buffers), sorted(named.pte_data)),
        None if named is None else sorted(named.external_data),
        id(original),
        id(original.graph_module),
        sorted((k, tuple(v.shape), str(v.dtype)) for k, v in original.state_dict.items()),
        [
            (n.op, n.name, str(n.target), len(n.args), len(n.users), sorted(n.meta))
            for n in original.graph.nodes
        ],
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def delegates_of(program: Any) -> list[Any]:
    """The delegates in ``program``'s methods' graphs (none below EDGE)."""
    if program.level < Level.EDGE:
        return []
    eps = program.exported_programs().values()
    return [d for ep in eps for d in views.lowered_modules(ep.graph_module)]


class DelegateTexts:
    """The texts of a run's delegates: made here, or written to a file by a child."""

    def __init__(self) -> None:
        self._made: dict[int, tuple[Any, str, str]] = {}  # id -> (delegate, mark, text)
        self._unwritten: list[int] = []  # made here since ``write``
        self._files: dict[int, tuple[Any, Path]] = {}  # id -> (delegate, a child's file)
        self._digests: dict[Path, str] = {}  # a child's file -> the sha256 it reported
        self._read: dict[Path, dict[str, Any]] = {}  # the files read here
        self._written = 0

    def __len__(self) -> int:
        return len(self._made.keys() | self._files.keys())

    def lookup(self, delegate: Any) -> str | None:
        """The text of ``delegate`` if this run made it and the delegate is unchanged."""
        made = self._made.get(id(delegate)) or self._from_file(delegate)
        if made is None or made[0] is not delegate or made[1] != fingerprint(delegate):
            return None
        return made[2]

    def remember(self, delegate: Any, text: str) -> None:
        self._made[id(delegate)] = (delegate, fingerprint(delegate), text)
        self._unwritten.append(id(delegate))

    def write(self, directory: Path) -> dict[str, Any] | None:
        """(A child's) write the texts made since the last ``write`` to a temporary file
        in ``directory`` (named as ``forked._remove_leftovers`` finds a child's); for
        its report: the file, its sha256 and the delegates' ids (None: none was made).
        The next child reads the file only if it still has that digest."""
        if not self._unwritten:
            return None
        data = {str(i): self._made[i][1:] for i in self._unwritten}
        raw = json.dumps(data).encode()
        path = directory / f".texts.{os.getpid()}.{self._written}.tmp"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        self._written += 1
        self._unwritten = []
        return {"file": str(path), "ids": sorted(data), "sha256": hashlib.sha256(raw).hexdigest()}

    def adopt(self, delegates: Iterable[Any], written: Mapping[str, Any] | None) -> None:
        """(The parent's) take a child's ``write`` for ``delegates``, which it held since
        the fork (so their ids are theirs still): the next children read the file."""
        if not isinstance(written, Mapping) or not isinstance(written.get("file"), str):
            return
        ids, path = set(written.get("ids") or ()), Path(written["file"])
        self._digests[path] = str(written.get("sha256"))
        for d in delegates:
            if str(id(d)) in ids:
                self._files[id(d)] = (d, path)

    def clear(self) -> None:
        """Forget every text and remove the children's files."""
        for path in self._digests:  # every file adopted, whether it named a delegate or not
            with contextlib.suppress(OSError):
                path.unlink()
        self._made.clear()
        self._files.clear()
        self._digests.clear()
        self._read.clear()
        self._unwritten = []

    def _from_file(self, delegate: Any) -> tuple[Any, str, str] | None:
        held = self._files.get(id(delegate))
        if held is None:
            return None
        path = held[1]
        if path not in self._read:  # as its child wrote it, or not at all
            self._read[path] = {}
            with contextlib.suppress(OSError, ValueError):
                raw = path.read_bytes()
                if hashlib.sha256(raw).hexdigest() == self._digests.get(path):
                    self._read[path] = json.loads(raw)
        got = self._read[path].get(str(id(delegate)))
        if not (isinstance(got, list) and len(got) == 2 and all(isinstance(x, str) for x in got)):
            return None
        return (held[0], got[0], got[1])


_PATCHING = threading.Lock()


@contextlib.contextmanager
def serializing(texts: DelegateTexts | None) -> Iterator[None]:
    """executorch's serde, within the block, takes delegates' texts from ``texts`` and
    remembers the ones it makes (None: serde as it is). Used around one encode; two
    threads encoding at once take turns (the method is patched on serde's class)."""
    if texts is None:
        yield
        return
    from executorch.exir.serde.serialize import GraphModuleSerializer as Serializer

    def once(self: Any, node: Any) -> str:
        delegate = strip.real_delegate(getattr(node.graph.owning_module, node.target, None))
        if delegate is None:
            return serialize(self, node)
        text = texts.lookup(delegate)
        if text is None:
            text = serialize(self, node)
            texts.remember(delegate, text)
        return text

    with _PATCHING:  # (read inside: another thread's patch is undone by now)
        serialize = Serializer.serialize_lowered_module
        Serializer.serialize_lowered_module = once
        try:
            yield
        finally:
            Serializer.serialize_lowered_module = serialize
