"""Content hashes: of a Program (structure + weights), of Python source, of plain values.

Used as cache keys (``pteflow.passes.cache``), so each hash must change whenever the thing
it stands for changes; a hash that changes when nothing did only costs a cache miss.
Where a value cannot be hashed faithfully the functions say so (``Unhashable``) rather
than guess.

* ``program_hash(program)``: the level, facts, metadata, example inputs, dynamic shapes
  and the artifact: EAGER by the code of every module class (their source files) plus
  every tensor (parameters, buffers, tensor attributes) and plain attribute of every
  submodule; ATEN by ``torch.export.save`` bytes; EDGE by ExecuTorch's serializer
  (``executorch.exir.serde``) and each program's verifier state (the ops to-edge kept
  whole, ``edge_verifier_state``); EXECUTORCH by the ``.pte`` bytes.
* ``source_hash(obj)``: the source files of the module defining ``obj`` and of the
  modules it reaches through its globals, restricted to code outside site-packages and
  the standard library (pteflow itself, a user's own modules); the installed packages
  are keyed by their versions instead (``versions()``).
* ``structural_hash(program)``: the structure only (what ``views.dump`` shows, minus the
  facts line; at EAGER plus parameter/buffer names, shapes and dtypes), no weight values:
  the manager's check that a pass reporting "unchanged" changed nothing.
* ``value_hash(value)`` / ``canonical(value)``: a stable text form of options and
  metadata (attrs classes, dataclasses, enums, containers, tensors).

Importing this module does not import torch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import io
import re
import sys
import threading
import types
import weakref
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .code_hash import VERSIONED, Unhashable, is_own_code, source_hash, versions
from .levels import Level

if TYPE_CHECKING:
    import torch

    from .program import Program

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
__all__ = ["VERSIONED", "Unhashable", "source_hash", "versions"]  # re-exported (code_hash)


def _h() -> hashlib._Hash:
    return hashlib.sha256()


# --------------------------------------------------------------------------- values


def _tensor_bytes(t: torch.Tensor) -> Iterator[bytes]:
    import torch

    yield f"T{t.dtype}{tuple(t.shape)}".encode()
    if type(t) not in (torch.Tensor, torch.nn.Parameter) and hasattr(t, "__tensor_flatten__"):
        names, ctx = t.__tensor_flatten__()
        yield f"{type(t).__module__}.{type(t).__qualname__}:{canonical(ctx)}".encode()
        for n in names:
            yield n.encode()
            yield from _tensor_bytes(getattr(t, n))
        return
    if t.is_quantized or t.layout != torch.strided:
        buf = io.BytesIO()
        torch.save(t.detach().cpu(), buf)
        yield buf.getvalue()
        return
    yield tensor_digest(t).encode()


#: id(tensor) -> (weak reference, version, data pointer, sha256 of its bytes): each weight
#: is hashed once per process (the input's key, then the cache's blob addresses) while it
#: stays unchanged. Keyed by identity: tensors compare elementwise.
_DIGESTS: dict[int, tuple[Any, int, int, str]] = {}
_DIGESTS_LOCK = threading.Lock()


def plain_cpu(t: Any) -> bool:
    """A CPU strided tensor of torch's own classes (no subclass), not quantized: its
    bytes are its value (the pass cache, ``known_bytes`` and the parallel digests ask)."""
    torch = sys.modules.get("torch")
    return (
        torch is not None
        and type(t) in (torch.Tensor, torch.nn.Parameter)
        and t.layout == torch.strided
        and t.device.type == "cpu"
        and not t.is_quantized
    )


def raw_bytes(t: torch.Tensor) -> memoryview:
    """A plain strided tensor's bytes in C order (a view when it is contiguous on CPU)."""
    import torch

    flat = t.detach().cpu().contiguous().reshape(-1)
    if not flat.numel():
        return memoryview(b"")
    return memoryview(flat.view(torch.uint8).numpy())  # type: ignore[arg-type]


#: From this size a tensor's bytes are hashed in pieces, its memory-mapped file's pages
#: handed back after each (``mapped_pages.sha256_releasing``).
_HASHED_IN_PIECES = 8 << 20


def _sha256(t: torch.Tensor) -> str:
    """sha256 (hex) of ``raw_bytes(t)``; a large contiguous CPU tensor's through
    ``mapped_pages.sha256_releasing`` (its memory-mapped file's pages handed back)."""
    data = raw_bytes(t)
    if data.nbytes < _HASHED_IN_PIECES or t.device.type != "cpu" or not t.is_contiguous():
        return hashlib.sha256(data).hexdigest()
    from . import mapped_pages

    return mapped_pages.sha256_releasing(data, t.data_ptr())


def _stamp(t: torch.Tensor) -> tuple[int, int] | None:
    """What a remembered digest is valid for: ``t``'s version and storage address; None
    for an inference tensor (no version counter: its digest is never remembered)."""
    try:
        return (t._version, t.data_ptr() if t.numel() else 0)
    except RuntimeError:
        return None


def remembered_digest(t: torch.Tensor) -> str | None:
    """``tensor_digest(t)`` if it was taken and ``t`` is unchanged since, without reading
    ``t``'s bytes; else None."""
    stamp = _stamp(t)
    if stamp is None:
        return None
    with _DIGESTS_LOCK:
        known = _DIGESTS.get(id(t))
    if known is not None and known[0]() is t and known[1:3] == stamp:
        return str(known[3])
    return None


def remembered_tensors() -> list[tuple[torch.Tensor, str]]:
    """The live tensors whose digest this process remembers and that are unchanged since,
    each with it (``ir.known_bytes`` compares byte strings with them)."""
    with _DIGESTS_LOCK:
        refs = [entry[0] for entry in _DIGESTS.values()]
    out = []
    for ref in refs:
        t = ref()
        digest = None if t is None else remembered_digest(t)
        if digest is not None:
            out.append((t, digest))
    return out


def tensor_digest(t: torch.Tensor) -> str:
    """sha256 (hex) of a plain strided tensor's bytes in C order, remembered per tensor
    object until it is modified in place (its version counter) or given other storage."""
    known = remembered_digest(t)
    if known is not None:
        return known
    digest = _sha256(t)
    stamp = _stamp(t)
    if stamp is None:
        return digest
    key = id(t)
    with contextlib.suppress(TypeError):  # a tensor without weakref support: not remembered
        ref = weakref.ref(t, lambda _r: _DIGESTS.pop(key, None))
        with _DIGESTS_LOCK:
            _DIGESTS[key] = (ref, *stamp, digest)
    return digest


def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def canonical(value: Any, _depth: int = 0) -> str:
    """A stable text form of a plain value (options, metadata, shapes).

    Tensors are replaced by their content hash; attrs classes and dataclasses by their
    class and fields; functions and classes by their qualified name and source hash.
    """
    if _depth > 12:
        raise Unhashable("value nested too deep to hash")
    d = _depth + 1
    if value is None or isinstance(value, bool | int | str):
        return repr(value)
    if isinstance(value, float):
        return value.hex()
    if isinstance(value, bytes):
        return "b:" + hashlib.sha256(value).hexdigest()
    if isinstance(value, enum.Enum):
        return f"{type(value).__qualname__}.{value.name}"
    if _is_tensor(value):
        h = _h()
        for chunk in _tensor_bytes(value):
            h.update(chunk)
        return "tensor:" + h.hexdigest()
    if isinstance(value, list | tuple):
        return type(value).__name__ + "[" + ",".join(canonical(v, d) for v in value) + "]"
    if isinstance(value, set | frozenset):
        return "set{" + ",".join(sorted(canonical(v, d) for v in value)) + "}"
    if isinstance(value, Mapping):
        items = sorted((canonical(k, d), canonical(v, d)) for k, v in value.items())
        return "{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
    cls = type(value)
    qual = f"{cls.__module__}.{cls.__qualname__}"
    if attrs.has(cls) or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
        names = (
            [a.name for a in attrs.fields(cls) if a.eq]
            if attrs.has(cls)
            else [f.name for f in dataclasses.fields(value)]
        )
        mod = sys.modules.get(cls.__module__)
        code = source_hash(cls) if mod is not None and is_own_code(mod) else ""
        return f"{qual}@{code}" + canonical({n: getattr(value, n) for n in names}, d)
    if isinstance(value, type | types.FunctionType | types.MethodType):
        target = value.__func__ if isinstance(value, types.MethodType) else value
        name = f"{target.__module__}.{target.__qualname__}"
        mod = sys.modules.get(target.__module__)
        code = source_hash(target) if mod is not None and is_own_code(mod) else ""
        return f"code:{name}:{code}"
    if isinstance(value, types.BuiltinFunctionType):
        return f"builtin:{getattr(value, '__module__', '')}.{value.__qualname__}"
    if isinstance(value, types.ModuleType):
        return f"module:{value.__name__}"
    if callable(getattr(value, "__cache_key__", None)):
        return qual + ":" + str(value.__cache_key__())
    text = repr(value)
    if _ADDRESS.search(text):
        fields = getattr(value, "__dict__", None)
        if fields is None:
            raise Unhashable(f"cannot hash a {qual} (its repr is an address)")
        return qual + canonical(dict(fields), d)
    return qual + ":" + text


def value_hash(value: Any) -> str:
    """sha256 of ``canonical(value)``."""
    return hashlib.sha256(canonical(value).encode()).hexdigest()


# --------------------------------------------------------------------------- programs

#: Attributes torch keeps on every module (hooks, flags); not part of what it computes.
_MODULE_BOOKKEEPING = frozenset(
    {"training", "_parameters", "_buffers", "_modules", "_non_persistent_buffers_set"}
)


#: Weights at least this large in all are hashed on several threads first (below it the
#: threads cost more than they save).
PARALLEL_DIGESTS_BYTES = 64 << 20


def _digests_taken_in_parallel(tensors: list[torch.Tensor]) -> None:
    """Take (and remember) the digests of the plain weights among ``tensors`` on up to
    ``os.cpu_count()`` (at most 4) threads: sha256 releases the GIL, and a run's first key
    waits for every weight's digest (5.7 GB at Llama-3.2-1B's shapes: 6.5 s on one
    thread). The walk after finds them remembered."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    todo = {
        id(t): t
        for t in tensors
        if plain_cpu(t)
        and not t.is_inference()  # (an inference tensor's digest is not kept)
        and remembered_digest(t) is None
    }
    workers = min(4, os.cpu_count() or 1)
    if workers < 2 or sum(t.nbytes for t in todo.values()) < PARALLEL_DIGESTS_BYTES:
        return
    biggest_first = sorted(todo.values(), key=lambda t: -t.nbytes)
    with ThreadPoolExecutor(workers, thread_name_prefix="pteflow-digest") as pool:
        list(pool.map(tensor_digest, biggest_first))


def module_hash(module: torch.nn.Module) -> str:
    """Code of every submodule class, every parameter/buffer, and plain attributes."""
    h = _h()
    _digests_taken_in_parallel([*module.parameters(), *module.buffers()])
    for name, sub in module.named_modules(remove_duplicate=False):
        cls = type(sub)
        mod = sys.modules.get(cls.__module__)
        code = source_hash(cls) if mod is not None and is_own_code(mod) else ""
        h.update(f"M{name}:{cls.__module__}.{cls.__qualname__}:{code}\0".encode())
        h.update(f"training={sub.training}\0".encode())
        for pname, tensor in list(sub._parameters.items()) + list(sub._buffers.items()):
            h.update(f"P{pname}\0".encode())
            if tensor is not None:
                for chunk in _tensor_bytes(tensor):
                    h.update(chunk)
        for key, value in sorted(vars(sub).items()):
            if key in _MODULE_BOOKKEEPING or (key.startswith("_") and key.endswith("hooks")):
                continue
            if key.startswith("_") and isinstance(value, dict) and not value:
                continue
            h.update(f"A{key}={canonical(value)}\0".encode())
    return h.hexdigest()


def _meta_val(val: Any) -> str:
    if isinstance(val, list | tuple):
        return "(" + ",".join(_meta_val(v) for v in val) + ")"
    shape = getattr(val, "shape", None)
    if shape is not None:
        return f"{getattr(val, 'dtype', '')}{tuple(str(d) for d in shape)}"
    return _ADDRESS.sub("", repr(val))


def exported_program_hash(ep: Any) -> str:
    """An ExportedProgram's graph (ops, arguments, values' dtypes and shapes), signature,
    range constraints, and every weight and constant."""
    h = _h()
    for node in ep.graph.nodes:
        line = (
            f"{node.op}|{node.name}|{node.target}|{node.args}|{node.kwargs}|"
            f"{_meta_val(node.meta.get('val'))}\0"
        )
        h.update(_ADDRESS.sub("", line).encode())
    h.update(_ADDRESS.sub("", str(ep.graph_signature)).encode())
    h.update(_ADDRESS.sub("", repr(sorted(map(str, ep.range_constraints.items())))).encode())
    for name, value in sorted({**ep.state_dict, **ep.constants}.items()):
        h.update(f"W{name}={canonical(value) if _is_tensor(value) else repr(value)}\0".encode())
    return h.hexdigest()


def _op_names(ops: Any) -> list[str]:
    return sorted({f"{op._schema.name}.{op._overloadname}" for op in ops or ()})


def edge_verifier_state(ep: Any) -> dict[str, Any]:
    """What an EDGE ExportedProgram's verifier allows beyond the core ATen opset.

    ``to_edge`` gives every program a verifier that also accepts the ops it kept whole for
    the partitioners it consulted (``preserve_ops``, the exception list), and
    ``ExportedProgram._validate`` (run by ``to_backend``) checks with it. That state lives
    only in the verifier class, which ``executorch.exir.serde`` does not keep: it is part
    of the program as much as its graph. Op names are ``ns::op.overload``; an empty dict
    for a program without an edge verifier.
    """
    verifiers = getattr(ep, "verifiers", ()) or ()
    edge = [v for v in verifiers if getattr(v, "dialect", None) == "EDGE"]
    if not edge:
        return {}
    v = edge[0]()
    return {
        "check_ir_validity": bool(v.enable),
        "use_dim_order": bool(v.use_dim_order),
        "core_aten_ops_exception_list": _op_names(v._core_aten_ops_exception_list),
        "preserve_ops": _op_names(v._preserve_ops),
    }


def artifact_hash(program: Program) -> str:
    """Hash of the compiled artifact at the program's level (see the module docstring)."""
    h = _h()
    if program.level == Level.EAGER:
        for method, module in sorted(program.modules().items()):
            h.update(f"{method}\0{module_hash(module)}\0".encode())
    elif program.level == Level.ATEN:
        # Not torch.export.save bytes: two exports of one model differ in them.
        for method, ep in sorted(program.exported_programs().items()):
            h.update(f"{method}\0{exported_program_hash(ep)}\0".encode())
    elif program.level == Level.EDGE:
        from executorch.exir.serde.serialize import serialize

        manager = program.artifact
        for method in sorted(manager.methods):
            art = serialize(manager.exported_program(method))
            h.update(method.encode() + b"\0")
            for part in (art.exported_program, art.state_dict, art.constants):
                h.update(hashlib.sha256(part).digest())
            # serde keeps no verifier: what it allows (the ops to-edge kept whole) is hashed
            h.update(canonical(edge_verifier_state(manager.exported_program(method))).encode())
        h.update(canonical(getattr(manager, "_config_methods", None)).encode())
        h.update(canonical(getattr(manager, "compile_config", None)).encode())
    else:
        from .serialized import pte_sha256

        h.update(bytes.fromhex(pte_sha256(program.artifact)))
    return h.hexdigest()


def program_hash(program: Program) -> str:
    """Hash of everything a pass can read of ``program``: structure, weights, data.

    Raises:
        Unhashable: some part cannot be hashed faithfully.
    """
    h = _h()
    h.update(f"level={program.level.label}\0".encode())
    h.update(("facts=" + ",".join(sorted(f.name for f in program.facts)) + "\0").encode())
    h.update(f"metadata={canonical(dict(program.metadata))}\0".encode())
    h.update(f"inputs={canonical(dict(program.example_inputs))}\0".encode())
    h.update(f"shapes={_shapes_text(program.dynamic_shapes)}\0".encode())
    h.update(f"artifact={artifact_hash(program)}\0".encode())
    return h.hexdigest()


def _shapes_text(shapes: Mapping[str, Any]) -> str:
    # torch.export Dim objects are dynamically made classes; their repr (not their
    # class identity) names the dim and its bounds: Dim('seq', min=1, max=127).
    text = repr(dict(sorted(shapes.items())))
    if _ADDRESS.search(text):
        raise Unhashable(f"cannot hash dynamic shapes {text}")
    return text


# --------------------------------------------------------------------------- structure


def structural_hash(program: Program) -> str:
    """The sha256 (hex) of the program's structure, independent of its facts."""
    from . import views

    h = hashlib.sha256(views.dump(program, facts=False).encode())
    if program.level == Level.EAGER:
        for method, module in program.modules().items():
            for name, t in [*module.named_parameters(), *module.named_buffers()]:
                h.update(f"{method}.{name}:{t.dtype}{list(t.shape)}\n".encode())
    return h.hexdigest()
