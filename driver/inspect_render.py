"""The text ``driver inspect`` prints for one ``.pte`` (``render``) or two (``render_diff``),
from ``inspect.inspect_pte``'s data."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any


def _mb(n: int) -> str:
    return f"{n / 1e6:.3f} MB" if n >= 100_000 else f"{n} B"


def _io(values: list[Any]) -> str:
    out = []
    for v in values:
        if isinstance(v, dict) and "tensor" in v:
            out.append(f"{v['tensor']}[{', '.join(map(str, v['shape']))}]")
        else:
            out.append(str(v))
    return ", ".join(out) or "-"


def _delegate_summary(info: dict[str, Any]) -> dict[str, dict[str, int]]:
    per: dict[str, dict[str, int]] = defaultdict(lambda: {"count": 0, "payload": 0, "weights": 0})
    for d in info["delegates"]:
        row = per[d["backend"]]
        row["count"] += 1
        row["payload"] += d["payload_bytes"]
        row["weights"] += d["weight_bytes"]
    return dict(per)


def _kernels(info: dict[str, Any]) -> Counter[str]:
    total: Counter[str] = Counter()
    for m in info["methods"]:
        total.update(m["kernels"])
    return total


def render(info: dict[str, Any], *, top: int = 10) -> str:
    """The human-readable inspection of one file."""
    lines = [f"{info['file']}: {_mb(info['bytes'])}"]
    lines.append("layout (adds up to the file size):")
    for part in info["layout"]:
        share = 100.0 * part["bytes"] / max(info["bytes"], 1)
        lines.append(f"  {part['part']:<44} {_mb(part['bytes']):>12}  {share:5.1f}%")
    lines.append("methods:")
    for m in info["methods"]:
        lines.append(f"  {m['name']}({_io(m['inputs'])}) -> {_io(m['outputs'])}")
        lines.append(
            f"    {sum(m['kernels'].values())} kernel calls, {m['delegate_calls']} delegate(s)"
        )
    if info["constant_methods"]:
        lines.append("metadata (constant methods):")
        for name, value in info["constant_methods"].items():
            lines.append(f"  {name} = {value}")
    summary = _delegate_summary(info)
    if summary:
        lines.append("delegates:")
        for backend, row in summary.items():
            lines.append(
                f"  {backend}: {row['count']} delegate(s), payload {_mb(row['payload'])}, "
                f"weights {_mb(row['weights'])}"
            )
    for p in info["partitions"]:
        who = f" ({p['backend']})" if p["backend"] else ""
        lines.append(f"  {p['pass']}{who}: {p['nodes']} nodes (from {info['report']})")
    if info["constants"]:
        named = sum(1 for c in info["constants"] if c["name"])
        lines.append(
            f"largest constants ({len(info['constants'])} tensors, {named} named"
            + ("" if info["report"] else "; names need the run's report beside the file")
            + "):"
        )
        for c in info["constants"][:top]:
            shape = f"[{', '.join(map(str, c['shape']))}]" if c["shape"] is not None else ""
            lines.append(
                f"  {c['name'] or '?':<40} {(c['dtype'] or '?') + shape:<22} "
                f"{_mb(c['bytes']):>12}  {c['where']}"
            )
        if len(info["by_layer"]) > 1:
            groups = ", ".join(f"{k} {_mb(v)}" for k, v in list(info["by_layer"].items())[:8])
            lines.append(f"  by layer: {groups}")
    kernels = _kernels(info)
    if kernels:
        lines.append(f"operators left to kernels ({sum(kernels.values())} calls):")
        lines.append("  " + ", ".join(f"{op} x{n}" for op, n in kernels.most_common()))
    rt = info["runtime"]
    if rt["missing_kernels"] or rt["missing_backends"]:
        what = []
        if rt["missing_kernels"]:
            what.append("no kernel for " + ", ".join(rt["missing_kernels"]))
        if rt["missing_backends"]:
            what.append("backend not registered: " + ", ".join(rt["missing_backends"]))
        lines.append("runtime here: CANNOT run it: " + "; ".join(what))
    elif rt["loads"]:
        lines.append("runtime here: every kernel and backend registered; the program loads")
    else:
        lines.append(f"runtime here: does NOT load: {rt['why']}")
    return "\n".join(lines)


def diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """What changed from ``a`` to ``b``: sizes, delegates, operators, metadata."""

    def parts(info: dict[str, Any]) -> dict[str, int]:
        return {p["part"]: p["bytes"] for p in info["layout"]}

    def changed(x: dict[str, Any], y: dict[str, Any]) -> dict[str, list[Any]]:
        return {k: [x.get(k), y.get(k)] for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)}

    return {
        "bytes": [a["bytes"], b["bytes"]],
        "layout": changed(parts(a), parts(b)),
        "delegates": changed(_delegate_summary(a), _delegate_summary(b)),
        "kernels": changed(dict(_kernels(a)), dict(_kernels(b))),
        "metadata": changed(a["constant_methods"], b["constant_methods"]),
        "methods": changed(
            {m["name"]: [m["inputs"], m["outputs"]] for m in a["methods"]},
            {m["name"]: [m["inputs"], m["outputs"]] for m in b["methods"]},
        ),
    }


def render_diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    d = diff(a, b)
    delta = b["bytes"] - a["bytes"]
    lines = [f"{a['file']} -> {b['file']}: {_mb(a['bytes'])} -> {_mb(b['bytes'])} ({delta:+d} B)"]
    sections = (
        ("layout", "size by part"),
        ("delegates", "delegates (count, payload, weights)"),
        ("kernels", "operators left to kernels (calls)"),
        ("metadata", "metadata"),
        ("methods", "method inputs/outputs"),
    )
    for key, title in sections:
        if not d[key]:
            continue
        lines.append(f"{title}:")
        for name, (x, y) in d[key].items():
            lines.append(f"  {name}: {_short(x)} -> {_short(y)}")
    if len(lines) == 1:
        lines.append("no differences in size, delegates, operators or metadata")
    return "\n".join(lines)


def _short(v: Any) -> str:
    if v is None:
        return "(none)"
    if isinstance(v, dict) and set(v) == {"count", "payload", "weights"}:
        return f"{v['count']}, {_mb(v['payload'])}, {_mb(v['weights'])}"
    if isinstance(v, int) and not isinstance(v, bool) and v >= 100_000:
        return _mb(v)
    return str(v)
