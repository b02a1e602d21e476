"""``driver inspect FILE.pte``: what a ``.pte`` holds, read with ExecuTorch's own serializer.

The file is parsed by ``executorch.exir._serialize`` (the flatbuffer program per
``program.fbs`` and the extended header that locates the segments after it); nothing here
reads flatbuffer bytes by hand. ``inspect_pte(path)`` returns a JSON-able dict:

- ``layout``: where every byte of the file goes (the program flatbuffer with its header,
  the constant segment, each delegate's payload, delegate weights (named data), mutable
  data, alignment padding); the parts add up to the file size;
- ``methods``: inputs and outputs (dtype, shape) and the operators each calls outside its
  delegates, with counts; ``constant_methods``: the metadata methods and their values;
- ``delegates``: backend id, payload bytes and weight bytes per delegate; with the run's
  JSON report beside the file, which partition pass made them and how many nodes it took;
- ``constants``: every constant tensor with its bytes, dtype and shape, named (and grouped
  by layer) when the report carries the run's constant names (``constant_names``);
- ``runtime``: whether this machine's runtime registers the kernels and backends the file
  needs (``ir/runnable.py``) and can load it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pteflow.ir import hashing


def _report_beside(path: Path) -> dict[str, Any] | None:
    report = path.with_suffix(".report.json")
    try:
        return json.loads(report.read_text())
    except (OSError, ValueError):
        return None


_DTYPES = {
    "FLOAT": "float32",
    "DOUBLE": "float64",
    "HALF": "float16",
    "LONG": "int64",
    "INT": "int32",
    "SHORT": "int16",
    "CHAR": "int8",
    "BYTE": "uint8",
}


def _dtype(scalar_type: Any) -> str:
    """A schema ScalarType in torch's words (``FLOAT`` -> ``float32``)."""
    return _DTYPES.get(scalar_type.name, scalar_type.name.lower())


def _value(ev: Any) -> Any:
    """A schema EValue as plain data (tensors as their dtype and shape)."""
    v = ev.val
    kind = type(v).__name__
    if kind == "Tensor":
        return {"tensor": _dtype(v.scalar_type), "shape": list(v.sizes)}
    for attr in ("int_val", "bool_val", "double_val", "string_val", "items"):
        if hasattr(v, attr):
            return getattr(v, attr)
    return kind.lower()


def _op_name(op: Any) -> str:
    return f"{op.name}.{op.overload}" if op.overload else op.name


def _layout(data: bytes, program: Any, header: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Every byte of the file in parts, and each segment's kind (parallel to ``segments``)."""
    size = len(data)
    if header is None or not header.is_valid():
        return [{"part": "program (flatbuffer)", "bytes": size}], []
    kinds = ["unreferenced segment"] * len(program.segments)
    if program.constant_segment and program.constant_segment.offsets:
        kinds[program.constant_segment.segment_index] = "constants"
    for plan in program.execution_plan:
        for d in plan.delegates:
            if d.processed.location.name == "SEGMENT":
                kinds[d.processed.index] = f"delegate payload ({d.id})"
    for nd in program.named_data or []:
        kinds[nd.segment_index] = "delegate weights (named data)"
    for seg in program.mutable_data_segments or []:
        kinds[seg.segment_index] = "mutable data"
    parts = [{"part": "program (flatbuffer, header, inline data)", "bytes": header.program_size}]
    pos = header.program_size
    for seg, kind in zip(program.segments, kinds, strict=True):
        start = header.segment_base_offset + seg.offset
        if start > pos:
            parts.append({"part": "padding", "bytes": start - pos})
        parts.append({"part": kind, "bytes": seg.size})
        pos = start + seg.size
    if size > pos:
        parts.append({"part": "padding", "bytes": size - pos})
    merged: dict[str, int] = defaultdict(int)
    for p in parts:
        merged[p["part"]] += p["bytes"]
    return [{"part": k, "bytes": v} for k, v in merged.items()], kinds


def _layer(name: str) -> str:
    m = re.match(r"(.*?\blayers?[._]\d+)[._]", name)
    return m.group(1) if m else name.split(".")[0]


def inspect_pte(path: Path) -> dict[str, Any]:
    """Everything ``driver inspect`` shows about ``path``, as plain data.

    Raises:
        UserError: the file does not exist or is not an ExecuTorch program.
    """
    from pteflow.ir.errors import UserError

    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    if data[4:8][:2] != b"ET":
        raise UserError(f"{path} is not an ExecuTorch program (.pte): no 'ET' file identifier")
    from executorch.exir._serialize._program import (
        _flatbuffer_to_program,
        _get_extended_header,
        deserialize_pte_binary,
    )

    from pteflow.ir.views import pte_program_part

    header = _get_extended_header(data)
    valid = header is not None and header.is_valid()
    try:
        raw = _flatbuffer_to_program(pte_program_part(data))
        pte = deserialize_pte_binary(data)
    except Exception as e:  # a damaged file: the serializer's own words
        raise UserError(f"{path} does not parse as an ExecuTorch program: {e}") from None
    layout, _ = _layout(data, raw, header if valid else None)
    report = _report_beside(path)
    names: dict[str, Any] = (report or {}).get("constants") or {}
    program = pte.program

    methods, constant_methods, delegates = [], {}, []
    named = dict(pte.named_data.pte_data) if pte.named_data else {}
    named_bytes = {k: bytes(pte.named_data.buffers[v.buffer_index]) for k, v in named.items()}
    tensor_of_buffer: dict[int, Any] = {}
    for plan in program.execution_plan:
        for v in plan.values:
            t = v.val
            if type(t).__name__ == "Tensor" and t.data_buffer_idx > 0:
                tensor_of_buffer.setdefault(t.data_buffer_idx, t)
        kernels: Counter[str] = Counter()
        for chain in plan.chains:
            for instr in chain.instructions:
                args = instr.instr_args
                if type(args).__name__ == "KernelCall":
                    kernels[_op_name(plan.operators[args.op_index])] += 1
        if not plan.inputs and not kernels and not plan.delegates and len(plan.outputs) == 1:
            constant_methods[plan.name] = _value(plan.values[plan.outputs[0]])
            continue
        for i, d in enumerate(plan.delegates):
            payload = _payload(program, d)
            weights = [k for k in named_bytes if k.encode() in payload]
            delegates.append(
                {
                    "method": plan.name,
                    "index": i,
                    "backend": d.id,
                    "payload_bytes": len(payload),
                    "weight_bytes": sum(len(named_bytes[k]) for k in weights),
                    "weights": weights,
                }
            )
        methods.append(
            {
                "name": plan.name,
                "inputs": [_value(plan.values[i]) for i in plan.inputs],
                "outputs": [_value(plan.values[i]) for i in plan.outputs],
                "kernels": dict(kernels.most_common()),
                "delegate_calls": len(plan.delegates),
            }
        )
    constants = _constants(program, tensor_of_buffer, named_bytes, names, delegates)
    return {
        "file": str(path),
        "bytes": len(data),
        "layout": layout,
        "methods": methods,
        "constant_methods": constant_methods,
        "delegates": delegates,
        "partitions": _partitions(report),
        "constants": constants,
        "by_layer": _by_layer(constants),
        "runtime": _runtime(data, methods, delegates),
        "report": str(path.with_suffix(".report.json")) if report else None,
    }


def _payload(program: Any, d: Any) -> bytes:
    """A delegate's processed bytes (``deserialize_pte_binary`` inlined segment payloads)."""
    return bytes(program.backend_delegate_data[d.processed.index].data)


def _constants(
    program: Any,
    tensor_of_buffer: dict[int, Any],
    named_bytes: dict[str, bytes],
    names: dict[str, Any],
    delegates: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Every constant tensor: in the constant segment (portable kernels' weights) and in
    delegate weights (named data), largest first; names from the report's hash map."""
    owner = {k: f"{d['backend']}#{d['index']}" for d in delegates for k in d["weights"]}
    out = []
    for idx, buf in enumerate(program.constant_buffer):
        if idx == 0 or not len(buf.storage):
            continue  # index 0 is the reserved empty buffer
        blob = bytes(buf.storage)
        t = tensor_of_buffer.get(idx)
        known = names.get(hashlib.sha256(blob).hexdigest()) or {}
        out.append(
            {
                "where": "constant segment",
                "name": known.get("name"),
                "dtype": _dtype(t.scalar_type) if t is not None else known.get("dtype"),
                "shape": list(t.sizes) if t is not None else known.get("shape"),
                "bytes": len(blob),
            }
        )
    for key, blob in named_bytes.items():
        known = names.get(key) or names.get(hashlib.sha256(blob).hexdigest()) or {}
        out.append(
            {
                "where": owner.get(key, "named data"),
                "name": known.get("name"),
                "dtype": known.get("dtype"),
                "shape": known.get("shape"),
                "bytes": len(blob),
            }
        )
    return sorted(out, key=lambda c: -c["bytes"])


def _by_layer(constants: list[dict[str, Any]]) -> dict[str, int]:
    groups: dict[str, int] = defaultdict(int)
    for c in constants:
        groups[_layer(c["name"]) if c["name"] else "(unnamed)"] += c["bytes"]
    return dict(sorted(groups.items(), key=lambda kv: -kv[1]))


def _partitions(report: dict[str, Any] | None) -> list[dict[str, Any]]:
    """From the report beside the file: each partition pass, its backend and node count."""
    if not report or not report.get("arbitration"):
        return []
    arb = report["arbitration"]
    backend_of: dict[str, str] = {}
    for node in arb.get("nodes", []):
        if node.get("claimed_by"):
            backend_of[node["claimed_by"]] = node.get("backend")
    return [
        {"pass": name, "backend": backend_of.get(name), "nodes": n}
        for name, n in arb["counts"].items()
    ]


def _runtime(data: bytes, methods: list[dict[str, Any]], delegates: list[dict[str, Any]]) -> Any:
    """Can this machine's runtime run it: missing kernels by name, missing backends, load."""
    from pteflow.ir import runnable

    have_ops = runnable.registered_operators()
    have_backends = runnable.registered_backends()
    missing = sorted({op for m in methods for op in m["kernels"] if op not in have_ops})
    no_backend = sorted({d["backend"] for d in delegates} - have_backends)
    loads, why = None, None
    if not missing and not no_backend:
        try:
            runnable.smoke_run(data, {}, execute=False)
            loads = True
        except runnable.RuntimeLoadError as e:
            loads, why = False, str(e)
    return {
        "missing_kernels": missing,
        "missing_backends": no_backend,
        "loads": loads,
        "why": why,
    }


def constant_names(program: Any) -> dict[str, dict[str, Any]]:
    """sha256 of every constant tensor's bytes -> its name, dtype and shape.

    Taken from an EXECUTORCH (or EDGE) program: each method's parameters, buffers and
    constants, and those of the programs its delegates were lowered from. The ``.pte``
    keeps no names; ``inspect_pte`` matches its buffers to these by content (XNNPACK keys
    its weights by the same hash), so a tensor a backend repacked stays unnamed.
    """
    import torch

    from pteflow.ir import mapped_pages

    out: dict[str, dict[str, Any]] = {}
    mapped = list(mapped_pages.data_file_mappings())

    def add(prefix: str, items: Any) -> None:
        for name, t in items:
            if type(t) is not torch.Tensor and type(t) is not torch.nn.Parameter:
                continue
            if t.is_quantized or t.layout != torch.strided:
                continue
            try:  # the digest the cache's keys and blobs already took (remembered per tensor)
                digest = hashing.tensor_digest(t)
            except (RuntimeError, TypeError):
                continue
            mapped_pages.release_tensor(t, mapped)  # a checkpoint's pages, read to hash
            out.setdefault(
                digest,
                {
                    "name": prefix + name,
                    "dtype": str(t.dtype).removeprefix("torch."),
                    "shape": list(t.shape),
                },
            )

    def walk(ep: Any, prefix: str) -> None:
        add(prefix, ep.state_dict.items())
        add(prefix, ep.constants.items())
        for _, module in ep.graph_module.named_modules():
            original = getattr(module, "original_module", None)
            if original is not None and hasattr(original, "state_dict"):
                walk(original, prefix)

    for method, ep in program.exported_programs().items():
        walk(ep, "" if method == "forward" else f"{method}:")
    return out
