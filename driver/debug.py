"""Seeing what each pass did: IR printing, per-pass dumps and the timing table.

These are ``PassObserver``s the ``driver run`` flags attach to the manager:

    --print-ir-before / --print-ir-after PASS[,PASS]|all   the stable dump (ir/views.py)
    --print-changed        a diff, only for passes that changed the program
    --dump-dir DIR         000-input.txt, 001-export.txt, ...: one file per pass
    --timing               the per-pass table (wall, CPU, share), slowest first

At EAGER there is no graph: the dump is the module tree, and a diff is
followed by the submodules that changed (added, removed, or a different class
or parameter shapes).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from pteflow.ir import Level, Program, views
from pteflow.ir.errors import UnknownNameError, UserError
from pteflow.passes.base import Pass
from pteflow.passes.manager import PassObserver, PassRecord

ALL = "all"


def parse_selection(text: str | None, flag: str, known: Iterable[str]) -> frozenset[str] | None:
    """``PASS[,PASS]`` or ``all`` as a set of pass names (``{"all"}`` for all); None if unset.

    Raises:
        UnknownNameError: a name that is not a pass of this pipeline (closest listed).
    """
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UserError(f"{flag}: give pass names separated by commas, or 'all'")
    known = sorted(set(known))
    for n in names:
        if n != ALL and n not in known:
            raise UnknownNameError(f"pass in this pipeline (for {flag})", n, [*known, ALL])
    return frozenset(names)


def _selected(selection: frozenset[str] | None, p: Pass) -> bool:
    return selection is not None and (ALL in selection or p.name in selection)


def eager_structure(program: Program) -> dict[str, str]:
    """Qualified submodule name -> its class and own parameter/buffer shapes (EAGER only)."""
    out = {}
    for method, module in program.modules().items():
        for name, sub in module.named_modules():
            tensors = [
                f"{n}:{str(t.dtype).removeprefix('torch.')}{list(t.shape)}"
                for n, t in [
                    *sub.named_parameters(recurse=False),
                    *sub.named_buffers(recurse=False),
                ]
            ]
            out[f"{method}/{name}" if name else method] = (
                f"{type(sub).__name__}({', '.join(tensors)})"
            )
    return out


def changed_submodules(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """The outermost submodules that were added, removed or changed."""
    changed = sorted(
        {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)},
    )
    outer: list[str] = []
    out: list[str] = []
    for name in changed:
        if any(name.startswith(o + ".") or name.startswith(o + "/") for o in outer):
            continue
        kind = "added" if name not in before else "removed" if name not in after else "changed"
        outer.append(name)
        out.append(f"{name}  [{kind}] {after.get(name) or before.get(name)}")
    return out


class IRPrinter(PassObserver):
    """Print the dump before/after selected passes, and diffs of changed passes."""

    needs_every_pass = True
    flag = "--print-ir-*/--print-changed"

    def __init__(
        self,
        *,
        before: frozenset[str] | None = None,
        after: frozenset[str] | None = None,
        changed: bool = False,
        out: Callable[[str], None] | None = None,
    ):
        self.before_sel, self.after_sel, self.changed = before, after, changed
        self.out = out or (lambda s: print(s, flush=True))
        self._text_in: str | None = None
        self._eager_in: dict[str, str] | None = None

    def before(self, rank: int, pass_: Pass, program_in: Program) -> None:
        self._text_in = views.dump(program_in) if self.changed else None
        self._eager_in = (
            eager_structure(program_in)
            if self.changed and program_in.level == Level.EAGER
            else None
        )
        if _selected(self.before_sel, pass_):
            self.out(_banner(f"IR before #{rank + 1} {pass_.describe()}", views.dump(program_in)))

    def after(self, rank: int, pass_: Pass, program_out: Program, record: PassRecord) -> None:
        if _selected(self.after_sel, pass_):
            self.out(_banner(f"IR after #{rank + 1} {pass_.describe()}", views.dump(program_out)))
        if self.changed and record.modified and self._text_in is not None:
            self.out(change_report(rank, pass_, self._text_in, self._eager_in, program_out))


def change_report(
    rank: int,
    pass_: Pass,
    text_in: str,
    eager_in: Mapping[str, str] | None,
    program_out: Program,
) -> str:
    """The diff of a pass's input and output dumps (plus changed submodules at EAGER)."""
    text_out = views.dump(program_out)
    label = f"#{rank + 1} {pass_.describe()}"
    body = views.diff(text_in, text_out, before_name=f"before {label}", after_name=f"after {label}")
    if not body:
        body = "(the dump is unchanged: the pass changed weights or metadata only)\n"
    if eager_in is not None and program_out.level == Level.EAGER:
        subs = changed_submodules(eager_in, eager_structure(program_out))
        body += "changed submodules:\n" + "".join(f"  {s}\n" for s in subs or ["(none)"])
    return _banner(f"IR changed by {label}", body)


def _banner(title: str, body: str) -> str:
    return f"// ----- {title} -----\n{body.rstrip()}\n"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")


class DumpDir(PassObserver):
    """Write ``000-input.txt`` and ``NNN-<pass>.txt`` (the program after pass NNN)."""

    needs_every_pass = True
    flag = "--dump-dir"

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"--dump-dir {self.path}: cannot create it: {e.strerror}") from None
        for old in self.path.glob("[0-9][0-9][0-9]-*.txt"):  # a rerun replaces the last one
            old.unlink()
        self.files: list[Path] = []

    def _write(self, name: str, program: Program) -> None:
        f = self.path / name
        f.write_text(views.dump(program))
        self.files.append(f)

    def before(self, rank: int, pass_: Pass, program_in: Program) -> None:
        if rank == 0:
            self._write("000-input.txt", program_in)

    def after(self, rank: int, pass_: Pass, program_out: Program, record: PassRecord) -> None:
        self._write(f"{rank + 1:03d}-{_slug(pass_.name)}.txt", program_out)


# --------------------------------------------------------------------------- timing


def timing_rows(
    records: Sequence[PassRecord], memory: Mapping[int, Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Per pass: wall and CPU seconds and share of the total wall time, slowest first;
    with ``memory`` (``MemoryWatch.rows``), the resident and peak MB after the pass too."""
    total = sum(r.wall_s for r in records) or 1.0
    rows = [
        {
            "rank": i + 1,
            "pass": f"{r.name}{r.options}",
            "wall_s": r.wall_s,
            "cpu_s": r.cpu_s,
            "check_s": r.check_s,
            "share": r.wall_s / total,
            **(memory or {}).get(i, {}),
        }
        for i, r in enumerate(records)
    ]
    return sorted(rows, key=lambda row: (-row["wall_s"], row["rank"]))


def timing_table(
    records: Sequence[PassRecord], memory: Mapping[int, Mapping[str, Any]] | None = None
) -> str:
    """The ``--timing`` text, like ``-mlir-timing``: slowest first, then the total; with
    ``memory``, each pass's peak RSS after it and how much it raised the process peak."""
    rows = timing_rows(records, memory)
    wall = sum(r.wall_s for r in records)
    cpu = sum(r.cpu_s for r in records)
    lines = [
        "===-------------------------------------------------------------===",
        "                      ... Pass execution timing report ...",
        "===-------------------------------------------------------------===",
        f"  Total Execution Time: {wall:.4f} seconds (CPU {cpu:.4f} s)",
        "",
        f"  {'---Wall Time---':>20}  {'---CPU Time---':>18}"
        + ("  ---Peak RSS (+raised)---" if memory else "")
        + "  --- Name ---",
    ]
    for row in rows:
        mem = ""
        if memory:
            mem = (
                f"  {row['peak_rss_mb']:8.0f} MB (+{row['peak_raised_mb']:6.0f})"
                if "peak_rss_mb" in row
                else f"  {'-':>8}    {'':9}"
            )
        lines.append(
            f"  {row['wall_s']:9.4f} ({row['share'] * 100:5.1f}%)  {row['cpu_s']:9.4f}         "
            f"{mem}  #{row['rank']} {row['pass']}"
        )
    lines.append(f"  {wall:9.4f} (100.0%)  {cpu:9.4f}           Total")
    return "\n".join(lines)


def write_stream(stream: TextIO = sys.stdout) -> Callable[[str], None]:
    return lambda s: print(s, file=stream, flush=True)
