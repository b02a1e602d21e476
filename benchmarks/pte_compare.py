"""Do two ``.pte`` files run the same program? (pteflow's against export_llama's.)

Decode latency is only worth comparing when the programs differ: when they are the same,
any difference in the measured ratio is the machine. ``program_difference`` reads both
files' flatbuffers and segments and compares everything the runtime executes: each
method's values, instructions, operators, inputs and outputs, memory plan, every weight
(named data, constant segment and buffers, by content) and every delegate payload. Two
things are left out because nothing runs them: a value's ``requires_grad`` flag, and the
``debug_handle`` of each XNNPACK node (profiling's link back to the graph node it came
from, numbered in graph order, so any extra node earlier in a flow renumbers it). XNNPACK
payloads are decoded with ExecuTorch's ``flatc`` and XNNPACK's ``schema.fbs``; other
backends' payloads are compared as bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

XNNPACK = "XnnpackBackend"


def against_reference(ours: Path, median: Path, others: Sequence[Path]) -> tuple[str | None, str]:
    """``ours`` against export_llama's median run's ``.pte`` and, when that differs, its
    ``others``: export_llama does not always write the same constants twice (stories
    default, one run of three: 6,080 bytes of its constant segment). The difference from
    the median run (None: the same program) and the row's words for it."""
    difference = program_difference(ours, median)
    if difference is None:
        return None, "the same program"
    same = sum(program_difference(ours, other) is None for other in others)
    if not same:
        return difference, f"program: {difference}"
    runs = len(others) + 1
    return difference, (
        f"the same program as {same} of export_llama's {runs} runs (its median run's: {difference})"
    )


def program_difference(a: Path, b: Path) -> str | None:
    """None when ``a`` and ``b`` run the same program (see the module's docstring), else
    one line naming the first difference found."""
    left, right = _Pte(a), _Pte(b)
    for what, get in (
        ("methods", lambda p: [plan.name for plan in p.program.execution_plan]),
        ("weights (named data)", lambda p: p.named_data()),
        ("constant segment", lambda p: p.constant_segment()),
        ("constant buffers", lambda p: [_sha(c.storage) for c in p.program.constant_buffer]),
        ("mutable data", lambda p: p.mutable_data()),
    ):
        if get(left) != get(right):
            return f"the {what} differ"
    for plan_a, plan_b in zip(
        left.program.execution_plan, right.program.execution_plan, strict=True
    ):
        why = _plan_difference(plan_a, plan_b, left, right)
        if why:
            return f"method {plan_a.name!r}: {why}"
    return None


def _plan_difference(plan_a: Any, plan_b: Any, left: _Pte, right: _Pte) -> str | None:
    for field in ("inputs", "outputs", "chains", "operators", "non_const_buffer_sizes"):
        if getattr(plan_a, field) != getattr(plan_b, field):
            return f"its {field} differ"
    if plan_a.container_meta_type != plan_b.container_meta_type:
        return "its input/output structure differs"
    values_a, values_b = _values(plan_a), _values(plan_b)
    if len(values_a) != len(values_b):
        return f"{len(values_a)} values vs {len(values_b)}"
    for i, (x, y) in enumerate(zip(values_a, values_b, strict=True)):
        if x != y:
            return f"value {i} differs ({str(x)[:120]} vs {str(y)[:120]})"
    if len(plan_a.delegates) != len(plan_b.delegates):
        return f"{len(plan_a.delegates)} delegates vs {len(plan_b.delegates)}"
    for i, (x, y) in enumerate(zip(plan_a.delegates, plan_b.delegates, strict=True)):
        if (x.id, x.compile_specs) != (y.id, y.compile_specs):
            return f"delegate {i} differs in its backend or compile specs"
        if left.delegate_digest(x) != right.delegate_digest(y):
            return f"delegate {i} ({x.id}) differs in its payload"
    return None


def _values(plan: Any) -> list[Any]:
    out = []
    for value in plan.values:
        val = value.val
        if dataclasses.is_dataclass(val) and hasattr(val, "requires_grad"):
            val = dataclasses.replace(val, requires_grad=False)  # nothing runs it
        out.append(val)
    return out


def _sha(data: Any) -> str:
    return hashlib.sha256(bytes(data)).hexdigest()


class _Pte:
    """One .pte: its program (the flatbuffer) and its segments, read by offset."""

    def __init__(self, path: Path) -> None:
        from executorch.exir._serialize._program import (
            _flatbuffer_to_program,
            _get_extended_header,
        )

        from pteflow.ir.views import read_pte_program_part

        self.path = Path(path)
        part = read_pte_program_part(self.path)  # the flatbuffer, not the segments
        header = _get_extended_header(part[:64])
        self.base = header.segment_base_offset if header is not None else 0
        self.program = _flatbuffer_to_program(part)

    def segment(self, index: int) -> bytes:
        seg = self.program.segments[index]
        with open(self.path, "rb") as f:
            f.seek(self.base + seg.offset)
            return f.read(seg.size)

    def named_data(self) -> dict[str, str]:
        named = self.program.named_data or []  # None in a portable program
        return {d.key: _sha(self.segment(d.segment_index)) for d in named}

    def constant_segment(self) -> list[str]:
        cs = self.program.constant_segment
        if cs is None or not cs.offsets:
            return []
        data = self.segment(cs.segment_index)
        ends = [*cs.offsets[1:], len(data)]
        return [_sha(data[start:end]) for start, end in zip(cs.offsets, ends, strict=True)]

    def mutable_data(self) -> list[Any]:
        return [
            (_sha(self.segment(m.segment_index)), list(m.offsets))
            for m in self.program.mutable_data_segments or []
        ]

    def delegate_digest(self, delegate: Any) -> str:
        from executorch.exir.schema import DataLocation

        ref = delegate.processed
        if ref.location == DataLocation.INLINE:
            payload = bytes(self.program.backend_delegate_data[ref.index].data)
        else:
            payload = self.segment(ref.index)
        normalize: Callable[[bytes], str] = xnnpack_digest if delegate.id == XNNPACK else _sha
        return normalize(payload)


def xnnpack_digest(payload: bytes) -> str:
    """The digest of an XNNPACK payload without its nodes' debug handles: the graph
    decoded to JSON (``flatc`` with XNNPACK's schema), debug handles removed, and the
    constant data after it."""
    graph, constants = xnnpack_graph(payload)
    for node in graph.get("xnodes", []):
        node.pop("debug_handle", None)
    return _sha(json.dumps(graph, sort_keys=True).encode()) + _sha(constants)


def xnnpack_graph(payload: bytes) -> tuple[dict[str, Any], bytes]:
    """An XNNPACK delegate payload as (its graph as JSON, its constant data)."""
    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader

    header = XNNHeader.from_bytes(payload[: XNNHeader.EXPECTED_LENGTH])
    start = header.flatbuffer_offset
    flatbuffer = payload[start : start + header.flatbuffer_size]
    begin = header.constant_data_offset
    constants = payload[begin : begin + header.constant_data_size]
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "graph.bin"
        binary.write_bytes(flatbuffer)
        subprocess.run(
            [_flatc(), "--json", "--strict-json", "--raw-binary", "-o", tmp, _schema(), "--",
             str(binary)],
            check=True, capture_output=True,
        )  # fmt: skip
        text = (Path(tmp) / "graph.json").read_text()
    # flatc writes non-finite floats (a node's unbounded output_min_max) as inf/nan
    return json.loads(re.sub(r"(?<=[\s:\[,])(-?)(inf|nan)\b", _nonfinite, text)), constants


def _nonfinite(match: re.Match) -> str:
    return match.group(1) + ("Infinity" if match.group(2) == "inf" else "NaN")


def _flatc() -> str:
    from executorch.exir._serialize._flatbuffer import _get_flatc_path

    return _get_flatc_path()


def _schema() -> str:
    from executorch.backends.xnnpack.serialization import xnnpack_graph_serialize

    return str(Path(xnnpack_graph_serialize.__file__).with_name("schema.fbs"))


if __name__ == "__main__":
    import sys

    difference = program_difference(Path(sys.argv[1]), Path(sys.argv[2]))
    print(difference or "the same program")
    raise SystemExit(1 if difference else 0)
