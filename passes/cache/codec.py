"""Program <-> bytes for cache entries, per level, with upstream serde traps repaired.

    EAGER       nothing: the key stands for it (a later ATEN entry is where a run resumes)
    ATEN        torch's serde per method (what torch.export.save writes, before its JSON)
    EDGE        executorch.exir.serde bytes per method (delegates included), the
                constant methods and the EdgeCompileConfig
    EXECUTORCH  the .pte bytes and the serde bytes of the execution programs

plus the Program's facts (by name), metadata, example inputs and dynamic shapes, and the
op libraries the storing process had imported. What serde loses is stored beside its
bytes and put back (each a test in tests/passes/cache/): unbacked symbol ranges
(``_restore_ranges``), parameters' ``requires_grad`` (``_restore_requires_grad``), and
each EDGE program's verifier (``_restore_verifier``: the ops to-edge kept whole for the
partitioners it consulted; without it ``to_backend`` refuses the restored program).

``encode`` returns the value an entry pickles, with its tensors, delegate payloads and
named data held apart (``strip.py``) for the blob pickler (``blobs.py``: stored once by
content, shared by every entry), and the EXECUTORCH ``.pte`` as pieces of those blobs;
the writer (``writer.py``) pickles and compresses it. ``decode`` unpickles, so it must
only ever see bytes the store has authenticated (``store.PassCache.read``).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import io
import logging
import pickle
import sys
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pteflow.ir import Fact, Level, Program, facts, hashing
from pteflow.ir.serialized import pte_pieces

from . import aten_save, blobs, delegate_texts, pte_split, repair, strip, sym_text
from .delegate_texts import DelegateTexts


def encode(program: Program, texts: DelegateTexts | None = None) -> dict[str, Any]:
    """What an entry for ``program`` (not EAGER) pickles. Raises on what cannot be stored.

    Graphs are serialized now (a later pass may edit them in place); tensors and large
    byte strings are held by reference for the blob pickler (``blobs.py``). The cyclic
    collector is paused meanwhile: what serde builds is acyclic and freed (pickled) before
    this returns, yet its allocations set off collections that walk every live graph
    (the passes' programs: ~0.1 s each at stories), on this thread or the writer's.
    ``texts``: the run's delegates serialized so far, reused and added to
    (``delegate_texts.py``).
    """
    with _collector_paused(), sym_text.printed_once():
        return _encode(program, texts)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _encode(program: Program, texts: DelegateTexts | None) -> dict[str, Any]:
    return {
        "level": program.level.name,
        "facts": sorted(f.name for f in program.facts),
        "metadata": dict(program.metadata),
        "example_inputs": dict(program.example_inputs),
        "dynamic_shapes": dict(program.dynamic_shapes),
        "artifact": _encode_artifact(program, texts),
        "libraries": _libraries(),
    }


def why_unstorable(program: Program) -> str | None:
    """Why ``program`` cannot be stored, known without trying (None: it can be).

    An ATEN graph that calls submodules (pt2e's observers, between prepare and convert)
    is not valid to ``torch.export.save``'s verifier: trying costs a failed serialization
    and a warning every pt2e run, for a result that is expected not to be stored."""
    if program.level != Level.ATEN:
        return None
    for method, ep in program.exported_programs().items():
        calls = sorted({n.target for n in ep.graph.nodes if n.op == "call_module"})
        if calls:
            return (
                f"method {method!r} calls submodules ({', '.join(map(str, calls[:2]))}"
                f"{', ...' if len(calls) > 2 else ''}), which torch.export cannot serialize"
            )
    return None


def decode(
    payload: bytes, fact_table: Mapping[str, Fact], blob_dir: blobs.BlobDir
) -> Program | None:
    """The program an authenticated payload holds; None when a fact is unknown here.

    Raises:
        blobs.MissingBlob: a blob it refers to is absent or altered.
    """
    data = blobs.loads(zlib.decompress(payload), blob_dir)
    names = data["facts"]
    if any(n not in fact_table for n in names):
        return None  # a fact this pipeline does not know: cannot restore faithfully
    _import_libraries(data.get("libraries", ()))
    level = Level[data["level"]]
    return Program(
        level,
        _decode_artifact(level, data["artifact"]),
        data["example_inputs"],
        data["dynamic_shapes"],
        data["metadata"],
        frozenset(fact_table[n] for n in names),
    )


def fact_table(extra: Iterable[Fact]) -> dict[str, Fact]:
    table = {v.name: v for v in vars(facts).values() if isinstance(v, Fact)}
    table.update({f.name: f for f in extra})
    return table


class _GraphTree:
    """A serialized graph: serde's schema objects, built from the live program and pickled
    at once with the C pickler (~0.04 s for a stories graph; serde's own conversion to
    JSON, ``_dataclass_to_dict``, is pure Python and took 5-6x that), so its tens of
    thousands of objects are gone before ``encode`` returns instead of waiting, alive and
    counted by the cyclic collector, for the writer thread. A restore unpickles them and
    gives them to serde's deserializer without parsing JSON (``_decode_artifact``)."""

    def __init__(self, tree: Any):
        self.data = pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_unpickled_tree, (self.data,))


def _unpickled_tree(data: bytes) -> Any:
    """A ``_GraphTree``'s schema objects, when its (authenticated) entry is decoded."""
    return pickle.loads(data)


def _serde(ep: Any) -> tuple[Any, ...]:
    """One program as executorch's serde writes it, graph only (``strip``), plus what
    serde loses (``extra``) and the data held apart (``held``)."""
    from executorch.exir.serde.serialize import ExportedProgramSerializer

    with strip.stripped(ep) as (shadow, held):
        art = ExportedProgramSerializer().serialize(shadow)
    ranges = {str(k): (str(v.lower), str(v.upper)) for k, v in ep.range_constraints.items()}
    grads = {
        "state": sorted(k for k, v in ep.state_dict.items() if v.requires_grad),
        "nodes": sorted(
            n.name
            for n in ep.graph.nodes
            if n.op == "placeholder" and getattr(n.meta.get("val"), "requires_grad", False)
        ),
    }
    extra = {
        "ranges": ranges,
        "requires_grad": grads,
        "verifier": hashing.edge_verifier_state(ep),
        "positional": repair.positional_counts(ep),
    }
    tree = _GraphTree(art.exported_program)
    return (tree, art.state_dict, art.constants, art.example_inputs, extra, held)


def _encode_artifact(program: Program, texts: DelegateTexts | None) -> Any:
    if program.level == Level.ATEN:
        # torch's own serde: executorch's does not round-trip an ATEN program to the same
        # .pte (tests/passes/cache/test_cache.py)
        out = {}
        for method, ep in program.exported_programs().items():
            with strip.stripped(ep) as (shadow, held):
                tree, *parts = aten_save.serialize(shadow)
            out[method] = (_GraphTree(tree), *parts, repair.positional_counts(ep), held)
        return {"aten": out}
    manager = program.artifact
    with delegate_texts.serializing(texts):
        methods = {m: _serde(manager.exported_program(m)) for m in sorted(manager.methods)}
    if program.level == Level.EDGE:
        return {
            "methods": methods,
            "config_methods": manager._config_methods,
            "compile_config": _encode_config(manager.compile_config),
        }
    if getattr(manager, "_tensor_data", None):
        raise hashing.Unhashable("the program keeps tensor data outside the .pte")
    known = [x for m in methods.values() for x in _held_data(m[-1])]
    pte = pte_split.PteBytes(pte_pieces(manager), known + _named_buffers(manager))
    return {"methods": methods, "config_methods": manager._config_methods, "pte": pte}


def pte_value(program: Program) -> dict[str, Any]:
    """The .pte ``program`` emits in a value the blob pickler stores as pieces of the blobs
    the program's entries already hold: the weights are not stored twice (``shared`` names
    them)."""
    manager = program.artifact
    known: list[Any] = []
    for method in sorted(manager.methods):
        with strip.stripped(manager.exported_program(method)) as (_shadow, held):
            known += list(_held_data(held))
    pte = pte_split.PteBytes(pte_pieces(manager), known + _named_buffers(manager))
    return {"artifact": {"pte": pte}}


def byte_blobs(program: Program) -> list[bytes]:
    """The byte strings an entry of ``program`` stores as blobs (delegate payloads, named
    data), found without encoding it: a forked writer's parent holds them while its child
    takes their digests, so the digests can come back (``forked.py``)."""
    if program.level == Level.EAGER:
        return []
    found = [x for ep in program.exported_programs().values() for x in strip.byte_strings(ep)]
    if program.level == Level.EXECUTORCH:
        found += _named_buffers(program.artifact)
    return [x for x in found if type(x) is bytes and len(x) >= blobs.MIN_BLOB]


def _named_buffers(manager: Any) -> list[Any]:
    """An ExecutorchProgramManager's named data (the .pte holds these byte strings)."""
    named = getattr(manager, "_named_data", None)
    return list(getattr(named, "buffers", None) or ())


def shared(value: dict[str, Any]) -> list[Any]:
    """The byte strings of an ``encode``d value that are blobs (delegate payloads, named
    data); its other bytes (graphs) stay in the entry, compressed."""
    artifact = value.get("artifact") or {}
    methods = [*artifact.get("methods", {}).values(), *artifact.get("aten", {}).values()]
    out = [x for m in methods for x in _held_data(m[-1])]
    pte = artifact.get("pte")
    return out + (pte.known if isinstance(pte, pte_split.PteBytes) else [])


def _held_data(held: dict[str, Any]) -> Iterator[Any]:
    """The tensors and byte strings ``strip.stripped`` held, delegates' included."""
    yield from held["state"].values()
    yield from held["constants"].values()
    for d in held["delegates"].values():
        yield d["processed"]
        yield from d["buffers"] or ()
        yield from _held_data(d["original"])


def _op_name(op: Any) -> tuple[str, str]:
    return (op._schema.name, op._overloadname)


def _op(name: tuple[str, str]) -> Any:
    import torch

    ns, op = name[0].split("::")
    return getattr(getattr(getattr(torch.ops, ns), op), name[1])


def _op_from_text(text: str) -> Any:
    """``'aten::linear.default'`` (``hashing.edge_verifier_state``'s names) -> the op."""
    schema, overload = text.rsplit(".", 1)
    return _op((schema, overload))


def _restore_verifier(ep: Any, state: dict[str, Any]) -> None:
    """Give a deserialized EDGE program the verifier it was stored with.

    Upstream trap (executorch 1.5.1 serde): a deserialized program gets whichever class
    registered last under the "EDGE" dialect, not its own, so the ops to-edge kept whole
    (``aten.linear`` for XNNPACK's dynamic-quant partitioner) are no longer allowed, and
    ``to_backend``'s ``_validate`` raises "aten.linear.default is not in Core ATen opset"
    on a program a fresh run lowers without complaint.
    """
    if not state:
        return
    from executorch.exir import EdgeCompileConfig
    from executorch.exir.verification.verifier import EXIREdgeDialectVerifier

    config = EdgeCompileConfig(
        _check_ir_validity=state["check_ir_validity"],
        _skip_dim_order=not state["use_dim_order"],
    )
    ep._verifiers = [
        EXIREdgeDialectVerifier(
            edge_compile_config=config,
            class_only=True,
            core_aten_ops_exception_list=[
                _op_from_text(n) for n in state["core_aten_ops_exception_list"]
            ],
            preserve_ops=[_op_from_text(n) for n in state["preserve_ops"]],
        )
    ]


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
    if level == Level.ATEN:
        import torch

        out = {}
        for method, (saved, *parts, counts, held) in data["aten"].items():
            if isinstance(saved, bytes):  # torch.export.save's (entries stored before trees)
                out[method] = torch.export.load(io.BytesIO(saved))
            else:
                out[method] = aten_save.deserialize(saved, *parts)
            strip.attach(out[method], held)
            repair.restore_positional(out[method], counts)
        return out
    from executorch.exir.serde.export_serialize import SerializedArtifact
    from executorch.exir.serde.serialize import ExportedProgramDeserializer, deserialize

    eps = {}
    with _quiet_serde():
        for method, (graph, *parts, extra, held) in data["methods"].items():
            if isinstance(graph, bytes):  # serde's JSON (entries stored before the trees)
                ep = deserialize(SerializedArtifact(graph, *parts))
            else:  # what deserialize builds from the JSON, stored as it was
                ep = ExportedProgramDeserializer().deserialize(graph, *parts)
            strip.attach(ep, held)
            repair.restore_ranges(ep, extra["ranges"])
            repair.restore_requires_grad(ep, extra["requires_grad"])
            _restore_verifier(ep, extra.get("verifier") or {})
            repair.restore_positional(ep, extra["positional"])
            eps[method] = ep
    from executorch.exir import EdgeProgramManager, ExecutorchProgramManager
    from executorch.exir._serialize._cord import Cord

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
    manager._pte_data = Cord(data["pte"])  # what write_to_file writes
    manager._tensor_data = {}
    manager._buffer = data["pte"]
    manager._etrecord = None
    return manager
