"""``driver``: run, plan and list pteflow pipelines.

Start-up imports nothing heavy: torch and ExecuTorch load only when a
command needs them, so ``driver --help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

EXAMPLES_RUN = """\
examples:
  driver run --pipeline xnnpack_default -o llama.pte
  driver run --model mypkg.models:build --passes export,to-edge,to-executorch,emit -o m.pte
  driver run --pipeline my_pipeline.toml --set to-edge.skip_dim_order=true
"""
EXAMPLES_CACHE = """\
examples:
  driver cache info
  driver cache info --cache-dir /tmp/pteflow-cache
  driver cache clear
  driver run --pipeline xnnpack_default --no-cache
"""
EXAMPLES_PLAN = """\
examples:
  driver plan --passes emit,to-executorch,export,to-edge
  driver plan --pipeline xnnpack_default
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="driver",
        description="pteflow: compile PyTorch models to ExecuTorch .pte files with a "
        "pass manager that orders passes from their declared contracts.",
        epilog="Run 'driver COMMAND --help' for a command's options.",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def pipeline_args(sp: argparse.ArgumentParser) -> None:
        src = sp.add_mutually_exclusive_group()
        src.add_argument(
            "--pipeline",
            metavar="NAME|FILE.toml",
            help="a named pipeline (driver list pipelines) or a pipeline file",
        )
        src.add_argument(
            "--passes",
            metavar="LIST",
            help="passes by name, comma separated; options in braces: "
            "'export,to-edge{skip_dim_order=true},to-executorch,emit'",
        )
        sp.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="PASS.OPTION=VALUE",
            help="override an option of every pass of that name (repeatable)",
        )
        sp.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks on errors",
        )

    run = sub.add_parser(
        "run",
        help="compile a model to a .pte",
        epilog=EXAMPLES_RUN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Schedule the pipeline's passes, run them with checks "
        "between passes, write the .pte and a JSON report.",
    )
    pipeline_args(run)
    model = run.add_argument_group(
        "model (default: the built-in tiny Llama with seeded random weights)"
    )
    model.add_argument(
        "--model",
        metavar="MODULE:FUNCTION",
        help="a function returning (nn.Module, example_inputs[, dynamic_shapes]) "
        "or a pteflow Program; MODULE may be a path to a .py file",
    )
    model.add_argument(
        "--params",
        metavar="params.json",
        help="a Llama params file, as export_llama takes (Meta format)",
    )
    model.add_argument(
        "--checkpoint",
        metavar="consolidated.pth",
        help="the Llama checkpoint for --params (default: seeded random weights)",
    )
    model.add_argument(
        "--max-seq-len",
        type=int,
        metavar="N",
        help="maximum sequence length of a Llama (default: params.json's, else 128)",
    )
    model.add_argument(
        "--max-context-len",
        type=int,
        metavar="N",
        help="KV cache length of a Llama (default: params.json's, else --max-seq-len)",
    )
    run.add_argument(
        "-o",
        "--output",
        metavar="PATH.pte",
        help="where the emit pass writes the .pte (sets emit.path)",
    )
    run.add_argument(
        "--checks",
        choices=("each", "boundaries", "off"),
        default="boundaries",
        help="when the manager checks level invariants and claimed facts "
        "(default: boundaries = after level changes and at the end)",
    )
    run.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the .pte in executorch.runtime and compare with eager "
        "(default: on for named pipelines and when a .pte is written)",
    )
    run.add_argument(
        "--report",
        metavar="PATH.json",
        help="where to write the JSON report (default: beside the .pte)",
    )

    cache_args(run)

    plan = sub.add_parser(
        "plan",
        help="print the ordered passes and why",
        epilog=EXAMPLES_PLAN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Order a pipeline without running it; each pass is "
        "followed by the constraints that put it there.",
    )
    pipeline_args(plan)
    plan.add_argument(
        "--from-level",
        default="eager",
        metavar="LEVEL",
        help="the level of the input program (default: eager)",
    )

    cache = sub.add_parser(
        "cache",
        help="show or clear the pass-result cache",
        epilog=EXAMPLES_CACHE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="driver run stores each cacheable pass's result, keyed by its input, "
        "options, source code and the torch/executorch/torchao/pteflow versions, and "
        "starts the next run after the longest cached prefix of its passes.",
    )
    cache.add_argument(
        "action",
        choices=("info", "clear"),
        help="info: entries, size, hit rate of the last run; clear: delete every entry",
    )
    cache_args(cache)
    cache.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors"
    )

    lst = sub.add_parser(
        "list", help="list passes, pipelines or backends", description="List what pteflow knows."
    )
    lst.add_argument("what", choices=("passes", "pipelines", "backends"))
    lst.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors"
    )
    return p


def cache_args(sp: argparse.ArgumentParser) -> None:
    """The pass-cache options (driver run, driver cache)."""
    g = sp.add_argument_group("pass-result cache")
    if sp.prog.endswith(" run"):
        g.add_argument(
            "--no-cache",
            action="store_true",
            help="run every pass; neither read nor write the cache",
        )
    g.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="where cached pass results live (default: $XDG_CACHE_HOME/pteflow, "
        "else ~/.cache/pteflow)",
    )
    g.add_argument(
        "--cache-size",
        metavar="SIZE",
        default="10G",
        help="size cap; least recently used entries are evicted beyond it (default: 10G)",
    )


def _cache(args: argparse.Namespace) -> Any:
    from pteflow.passes.cache import PassCache, parse_size

    return PassCache(args.cache_dir, max_bytes=parse_size(args.cache_size), log=_warn)


def _warn(message: str) -> None:
    sys.stderr.write(f"driver: warning: {message}\n")


def cmd_cache(args: argparse.Namespace) -> int:
    cache = _cache(args)
    if args.action == "clear":
        n = cache.clear()
        _say(f"removed {n} entries from {cache.directory}")
        return 0
    info = cache.info()
    _say(f"cache: {info.directory}")
    _say(f"entries: {info.entries}")
    _say(f"total size: {info.total_bytes / 2**20:.2f} MiB (cap {info.max_bytes / 2**30:.2f} GiB)")
    last = info.last_run
    if last:
        _say(
            f"last run: hit rate {last['hit_rate']:.0%} ({last['hits']} of "
            f"{last['cacheable']} cacheable passes restored, {last['stored']} stored; "
            f"load {last.get('load_s', 0):.1f}s, store {last.get('store_s', 0):.1f}s)"
        )
        for note in last.get("notes", []):
            _say(f"  note: {note}")
    else:
        _say("last run: none recorded")
    return 0


# --------------------------------------------------------------------------- helpers


def _say(text: str = "") -> None:
    print(text, flush=True)


def _specs(args: argparse.Namespace) -> tuple[Any, list]:
    from . import pipelines
    from .spec import apply_overrides, parse_pass_list

    if args.pipeline:
        pipe = pipelines.load(args.pipeline)
        specs = list(pipe.passes)
    elif args.passes:
        pipe = None
        specs = parse_pass_list(args.passes)
    else:
        from pteflow.ir.errors import UserError

        raise UserError(
            "give a pipeline: --pipeline NAME (driver list pipelines) or "
            "--passes a,b,c (driver list passes)"
        )
    return pipe, apply_overrides(specs, args.set)


def _build(specs: list) -> tuple[dict, list]:
    from pteflow.passes.registry import load_registry

    from .spec import build_pass

    registry = load_registry()
    return registry, [build_pass(registry, s) for s in specs]


# --------------------------------------------------------------------------- commands


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "passes":
        from pteflow.passes.registry import load_registry

        for name, cls in sorted(load_registry().items()):
            info = cls.info
            lv = (
                info.level_in.label
                if not info.is_conversion
                else f"{info.level_in.label}->{info.level_out.label}"
            )
            _say(f"{name:28s} [{lv}] {cls.doc()}")
            for label, facts in (
                ("requires", info.requires),
                ("provides", info.provides),
                ("invalidates", info.invalidates),
            ):
                if facts:
                    _say(f"{'':28s}   {label}: {', '.join(sorted(f.name for f in facts))}")
    elif args.what == "pipelines":
        from .pipelines import named_pipelines

        for name, desc in named_pipelines().items():
            _say(f"{name:24s} {desc}")
    else:
        from .backends import backend_table

        for name, status in backend_table():
            _say(f"{name:10s} {status}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from pteflow.ir import Level
    from pteflow.passes import plan

    _pipe, specs = _specs(args)
    registry, passes = _build(specs)
    start = Level.parse(args.from_level)
    the_plan = plan(
        passes,
        start_level=start,
        initial_facts=_source_facts(_pipe) if start == Level.EAGER else (),
        registry=registry,
    )
    _say(the_plan.render())
    return 0


def _source_facts(pipe: Any) -> set:
    """Facts the model source establishes, known without loading it.

    The Llama sources (the default tiny Llama, --params) build the KV cache.
    """
    from pteflow.ir import facts

    if pipe is not None and pipe.model not in (None, "tiny-llama"):
        return set()
    return {facts.KV_CACHE}


def _load_model(args: argparse.Namespace, pipe: Any) -> Any:
    """The model the run compiles: --model, else --params, else the pipeline's, else tiny."""
    from pteflow.ir.errors import UserError

    if args.model and (args.params or args.checkpoint):
        raise UserError("give either --model or --params/--checkpoint, not both")
    if args.checkpoint and not args.params:
        raise UserError("--checkpoint needs --params (the params.json it was trained with)")
    lengths = {
        k: v
        for k, v in (("max_seq_len", args.max_seq_len), ("max_context_len", args.max_context_len))
        if v is not None
    }
    if args.model:
        if lengths:
            raise UserError(
                "--max-seq-len/--max-context-len apply to Llama models (--params or the default)"
            )
        from .models import from_callable

        return from_callable(args.model)
    from . import llama

    if args.params:
        return llama.from_params(args.params, args.checkpoint, **lengths)
    source = pipe.model if pipe is not None and pipe.model else "tiny-llama"
    if source != "tiny-llama":
        from .models import from_callable

        return from_callable(source)
    return llama.tiny_llama(**lengths)


def cmd_run(args: argparse.Namespace) -> int:
    from pteflow.ir.errors import UserError

    pipe, specs = _specs(args)
    if args.output:
        from .spec import PassSpec

        if not any(s.name == "emit" for s in specs):
            raise UserError("-o given, but the pipeline has no emit pass; add emit")
        specs = [
            PassSpec(s.name, {**s.options, "path": args.output}) if s.name == "emit" else s
            for s in specs
        ]
    registry, passes = _build(specs)

    from pteflow.passes import PassManager

    manager = PassManager(passes, verify=args.checks, registry=registry)
    manager.check_available()  # before any work: a missing SDK is known in a second
    if not args.model:
        # Refuse an unschedulable pipeline before paying for torch and the model.
        # (--model sources are planned once loaded: only then are their facts known.)
        manager.plan(initial_facts=_source_facts(pipe))

    cache = None
    if not args.no_cache:  # a bad --cache-dir/--cache-size is refused before any work
        cache = _cache(args)
        cache.check_writable()

    t0 = time.perf_counter()
    model = _load_model(args, pipe)
    _say(f"model: {model.description}")
    if pipe is not None:
        import attrs

        model = attrs.evolve(model, tolerance=pipe.tolerance)
    load_s = time.perf_counter() - t0

    total = len(passes)
    done = [0]

    def on_event(kind: str, pos: int, p: Any, record: Any) -> None:
        if kind == "start":
            done[0] += 1
            print(f"[{done[0]:2d}/{total}] {p.describe()} ...", end="", flush=True)
        else:
            changed = "" if record.modified else "  (no change)"
            cached = "  (cached)" if getattr(record, "cached", False) else ""
            _say(f" {record.wall_s:.2f}s{changed}{cached}")

    result = manager.run(model.program, on_event=on_event, cache=cache)
    emits = [p for p in passes if p.name == "emit"]
    pte = Path(emits[0].path) if emits else None

    verification = None
    do_verify = (
        args.verify
        if args.verify is not None
        else (pte is not None and (pipe.verify if pipe else True))
    )
    if do_verify and pte is None:
        raise UserError("--verify needs a .pte: add the emit pass")
    if do_verify and pte is not None:
        from .verify import verify_pte

        verification = verify_pte(pte, model)

    _print_summary(result, pte, verification)
    report = {
        "pipeline": pipe.name if pipe else args.passes,
        "model": model.description,
        "load_s": load_s,
        "schedule_s": result.schedule_s,
        "order": [p.describe() for p in result.plan.ordered_passes()],
        "passes": [r.to_json() for r in result.records],
        "pte": str(pte) if pte else None,
        "pte_bytes": pte.stat().st_size if pte else None,
        "verification": verification.to_json() if verification else None,
    }
    report_path = (
        Path(args.report) if args.report else (pte.with_suffix(".report.json") if pte else None)
    )
    if report_path:
        from pteflow.passes.emit.write_pte import write_atomically

        write_atomically(report_path, json.dumps(report, indent=2, default=str).encode())
        _say(f"report: {report_path}")
    if verification is not None and not verification.ok:
        _say(
            f"VERIFICATION FAILED: max abs diff {verification.max_abs_diff:.3g} > tolerance "
            f"{verification.tolerance:.3g}; {pte} is kept for inspection"
        )
        return 1
    return 0


def _print_summary(result: Any, pte: Path | None, verification: Any) -> None:
    rows = [("pass", "time s", "ops before", "ops after", "delegated", "changed", "cached")]
    for r in result.records:
        deleg = ", ".join(f"{k}:{v}" for k, v in r.delegated.items()) or "-"
        rows.append(
            (
                f"{r.name}{r.options}",
                f"{r.wall_s:.2f}",
                str(r.ops_before),
                str(r.ops_after),
                deleg,
                "yes" if r.modified else "no",
                "cached" if getattr(r, "cached", False) else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    _say()
    for row in rows:
        _say("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    total = sum(r.wall_s for r in result.records)
    _say(
        f"total {total:.2f}s over {len(result.records)} passes "
        f"(scheduling {result.schedule_s * 1000:.1f} ms)"
    )
    n_cached = sum(getattr(r, "cached", False) for r in result.records)
    if n_cached:
        _say(f"cached: {n_cached} of {len(result.records)} passes restored from the pass cache")
    if pte is not None and pte.exists():
        _say(f"wrote {pte} ({pte.stat().st_size / 1e6:.2f} MB)")
    if verification is not None:
        status = "ok" if verification.ok else "FAILED"
        _say(
            f"verify: max abs diff {verification.max_abs_diff:.3g} vs eager over "
            f"{verification.steps} step(s), tolerance {verification.tolerance:.3g}: {status}"
        )


COMMANDS = {"run": cmd_run, "plan": cmd_plan, "list": cmd_list, "cache": cmd_cache}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    debug = getattr(args, "debug", False)
    from pteflow.ir.errors import InvariantError, PassFailedError, UserError

    try:
        return COMMANDS[args.command](args)
    except UserError as e:
        if debug:
            raise
        sys.stderr.write(f"driver: error: {e}\n")
        return 2
    except PassFailedError as e:
        if debug:
            raise
        if e.is_user_error:
            sys.stderr.write(f"driver: error: in pass {e.pass_name}: {e.__cause__}\n")
            return 2
        sys.stderr.write(f"driver: {e} (run with --debug for the traceback)\n")
        return 1
    except InvariantError as e:
        if debug:
            raise
        sys.stderr.write(f"driver: {e} (run with --debug for the traceback)\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("driver: interrupted\n")
        return 130
