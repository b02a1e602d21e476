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
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .code_hash import VERSIONED, Unhashable, is_own_code, source_hash, versions
from .dims import DeferredShapes
from .levels import Level
from .tensor_digests import (
    digests_in_parallel,
    plain_cpu,
    raw_bytes,
    remembered_digest,
    remembered_tensors,
    tensor_digest,
)

if TYPE_CHECKING:
    import torch

    from .program import Program

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
__all__ = [  # re-exported (code_hash, tensor_digests)
    "VERSIONED",
    "Unhashable",
    "plain_cpu",
    "raw_bytes",
    "remembered_digest",
    "remembered_tensors",
    "source_hash",
    "tensor_digest",
    "versions",
]


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
    tokens = getattr(_WALK, "tensors", None)
    if tokens is None:
        yield tensor_digest(t).encode()
    else:  # its place in the list instead: the caller takes the digest (``tensors_as_tokens``)
        tokens.append(t)
        yield f"#{len(tokens) - 1}".encode()


_WALK = threading.local()


@contextlib.contextmanager
def tensors_as_tokens() -> Iterator[list[torch.Tensor]]:
    """While inside, on this thread: a tensor whose bytes a hash would take is not read;
    it joins the list this yields, and the hash takes its place in that list (``#0``,
    ``#1``, ...). The structure is hashed now, the weights' digests whenever the caller
    takes them (``passes.cache.input_key``: beside the first pass)."""
    tensors: list[torch.Tensor] = []
    outer = getattr(_WALK, "tensors", None)
    _WALK.tensors = tensors
    try:
        yield tensors
    finally:
        _WALK.tensors = outer


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


def module_hash(module: torch.nn.Module) -> str:
    """Code of every submodule class, every parameter/buffer, and plain attributes."""
    h = _h()
    if getattr(_WALK, "tensors", None) is None:
        digests_in_parallel([*module.parameters(), *module.buffers()])
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
    # class identity) names the dim and its bounds: Dim('seq', min=1, max=127). Deferred
    # shapes read alike without making torch's (ir.dims).
    text = shapes.text if isinstance(shapes, DeferredShapes) else repr(dict(sorted(shapes.items())))
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
