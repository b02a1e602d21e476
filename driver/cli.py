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

from . import qnn_sdk

EXAMPLES_RUN = """\
examples:
  driver run --pipeline xnnpack_default -o llama.pte
  driver run --model mypkg.models:build --passes export,to-edge,to-executorch,emit -o m.pte
  driver run --pipeline my_pipeline.toml --set to-edge.skip_dim_order=true
  driver run --pipeline qnn_default --no-delegate -o qnn_quant.pte   # no QNN SDK needed
  driver run --pipeline qnn_default --set pt2e-prepare.quantizer=qnn-8a8w --no-delegate
  driver run --pipeline xnnpack_default --track-numerics --timing --print-changed
"""
EXAMPLES_BISECT = """\
examples:
  driver bisect --pipeline xnnpack_default --tol 1e-4
  driver bisect --pipeline my_pipeline.toml --tol 1e-3 --plugin my_passes.py
  driver bisect --model mypkg.models:build --passes export,my-pass,to-edge --tol 1e-5

Runs prefixes of the planned pass order on a fresh copy of the model and
binary-searches for the first pass whose output drifts beyond --tol (max abs
difference to eager, or to the output of the last quantization pass) or that
raises / breaks an invariant; prints it with the diff of its input and output.
"""
EXAMPLES_REPRO = """\
examples:
  driver repro pteflow-repro/004-to-edge
  driver repro --debug pteflow-repro/004-to-edge     # with the traceback

A failing 'driver run' writes the directory (see --repro-dir) and prints this
command. It rebuilds the failing pass's input, replays the passes recorded
before it, runs the pass with the same checks and compares the error. Exit 1:
the failure reproduced; exit 0: it no longer does.
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
EXAMPLES_COVERAGE = """\
examples:
  driver check-coverage --pipeline qnn_default
  driver check-coverage --pipeline qnn_default --set split-mha-to-sha.enabled=true
  driver check-coverage --pipeline qnn_default --json coverage.json
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
            "--no-delegate",
            action="store_true",
            help="leave out partitioning and the passes that only prepare for a backend: "
            "the .pte runs the backend-prepared, backend-quantized graph on portable kernels "
            "(checks e.g. QNN's quantization numerics without the SDK)",
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
        sp.add_argument(
            "--plugin",
            action="append",
            default=[],
            metavar="MODULE|FILE.py",
            help="load the passes a module defines, for this run (repeatable)",
        )

    def model_args(sp: argparse.ArgumentParser) -> None:
        model = sp.add_argument_group(
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

    def checks_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--checks",
            choices=("each", "boundaries", "off"),
            default="boundaries",
            help="when the manager checks level invariants and claimed facts "
            "(default: boundaries = after level changes and at the end)",
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
    model_args(run)
    checks_arg(run)
    run.add_argument(
        "-o",
        "--output",
        metavar="PATH.pte",
        help="where the emit pass writes the .pte (sets emit.path)",
    )
    run.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the .pte in executorch.runtime and compare with eager "
        "(default: on for named pipelines and when a .pte is written)",
    )
    run.add_argument(
        "--tol",
        type=float,
        metavar="X",
        help="the largest max abs output difference --verify accepts against its reference "
        "(overrides the pipeline's tolerance; NaN/inf mismatches always fail)",
    )
    run.add_argument(
        "--report",
        metavar="PATH.json",
        help="where to write the JSON report (default: beside the .pte)",
    )

    debug_args(run)
    cache_args(run, no_cache=True)
    bisect_and_repro(sub, pipeline_args, model_args)

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
    plan.add_argument(
        "--all-reasons",
        action="store_true",
        help="also list ordering constraints implied by others (by default each pass "
        "shows the facts it waits for and its direct predecessors)",
    )

    cov = sub.add_parser(
        "check-coverage",
        help="which ops of a pipeline's graph a backend can take, without its SDK",
        epilog=EXAMPLES_COVERAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a pipeline up to its partitioner (its backend's edge passes "
        "included) and report, per op, whether the backend has a builder for it. "
        "Exit 0 when every op is covered, 1 when some are not (listed first).",
    )
    pipeline_args(cov)
    model_args(cov)
    checks_arg(cov)
    cov.add_argument(
        "--json",
        metavar="PATH.json",
        help="also write the per-node coverage as JSON",
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
    qnn_sdk.add_parser(sub)
    return p


def debug_args(run: argparse.ArgumentParser) -> None:
    """The 'which pass broke it' options of ``driver run`` (driver/debug.py, numerics.py)."""
    g = run.add_argument_group("debugging (see DEVELOPERS.md, 'Finding the pass that broke it')")
    g.add_argument(
        "--print-ir-after",
        metavar="PASS[,PASS]|all",
        help="print the program's stable dump after these passes",
    )
    g.add_argument(
        "--print-ir-before",
        metavar="PASS[,PASS]|all",
        help="print the program's stable dump before these passes",
    )
    g.add_argument(
        "--print-changed",
        action="store_true",
        help="print a diff of the dump for every pass that changed the program",
    )
    g.add_argument(
        "--dump-dir",
        metavar="DIR",
        help="write DIR/000-input.txt and one numbered dump per pass (001-export.txt, ...)",
    )
    g.add_argument(
        "--timing",
        action="store_true",
        help="print a per-pass wall/CPU time table, slowest first (always in the JSON report)",
    )
    g.add_argument(
        "--track-numerics",
        action="store_true",
        help="evaluate the program after every pass on the model's fixed inputs and print "
        "the error against eager and against the previous pass",
    )
    g.add_argument(
        "--repro-dir",
        metavar="DIR",
        default="pteflow-repro",
        help="where a failing pass's reproducer goes (default: ./pteflow-repro)",
    )


def bisect_and_repro(sub: Any, pipeline_args: Any, model_args: Any) -> None:
    """The ``bisect`` and ``repro`` commands (driver/bisect.py, driver/repro.py)."""
    bis = sub.add_parser(
        "bisect",
        help="find the first pass that drifts beyond a tolerance or fails",
        epilog=EXAMPLES_BISECT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Binary-search the pipeline's planned pass order for the first pass "
        "whose output drifts numerically or breaks an invariant.",
    )
    pipeline_args(bis)
    model_args(bis)
    bis.add_argument(
        "--tol",
        type=float,
        metavar="X",
        help="the largest max-abs output difference that is not a drift (required)",
    )
    bis.add_argument(
        "--checks",
        choices=("each", "boundaries", "off"),
        default="each",
        help="invariant checks while probing (default: each, so the breaking pass is named)",
    )
    rep = sub.add_parser(
        "repro",
        help="re-run a failing pass from its reproducer directory",
        epilog=EXAMPLES_REPRO,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Re-run exactly the pass that failed, on its recorded input.",
    )
    rep.add_argument("dir", metavar="DIR", help="a reproducer directory a failing run wrote")
    rep.add_argument(
        "--trust",
        action="store_true",
        help="replay a reproducer your key does not authenticate (someone else's, or "
        "edited): its files are unpickled, so only for one you have read",
    )
    rep.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback"
    )


def cache_args(sp: argparse.ArgumentParser, *, no_cache: bool = False) -> None:
    """The pass-cache options (driver run with ``no_cache``, driver cache)."""
    g = sp.add_argument_group("pass-result cache")
    if no_cache:
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
    from .spec import apply_overrides, enabled_only, parse_pass_list

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
    return pipe, enabled_only(apply_overrides(specs, args.set))


def _build(
    specs: list, plugins: Sequence[str] = (), *, no_delegate: bool = False
) -> tuple[dict, list]:
    from .spec import build_passes

    return build_passes(specs, plugins, no_delegate=no_delegate)


def _dropped_for_delegation(specs: list, kept: list) -> list[str]:
    names = {p.name for p in kept}
    return [s.name for s in specs if s.name not in names]


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
        from .backends import backend_table, backend_warnings

        for name, status in backend_table():
            _say(f"{name:10s} {status}")
        for line in backend_warnings():
            sys.stderr.write(f"driver: warning: {line}\n")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from pteflow.ir import Level
    from pteflow.passes import plan

    _pipe, specs = _specs(args)
    registry, passes = _build(specs, args.plugin, no_delegate=args.no_delegate)
    start = Level.parse(args.from_level)
    the_plan = plan(
        passes,
        start_level=start,
        initial_facts=_source_facts(_pipe) if start == Level.EAGER else (),
        registry=registry,
    )
    _say(the_plan.render(all_reasons=args.all_reasons))
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
    """The model the run compiles: --model, else --params, else the pipeline's, else tiny.

    The pipeline's ``model_options`` (e.g. static shapes for QNN) apply to Llama sources.
    """
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
    for key, value in lengths.items():
        if value <= 0:
            flag = "--" + key.replace("_", "-")
            raise UserError(f"{flag} must be a positive integer, got {value}")
    if args.model:
        if lengths:
            raise UserError(
                "--max-seq-len/--max-context-len apply to Llama models (--params or the default)"
            )
        from .models import from_callable, source_label

        return from_callable(args.model, where=source_label(args.model, pipe))
    from .models import llama

    options = {**(pipe.model_options if pipe is not None else {}), **lengths}
    if args.params:
        return llama.from_params(args.params, args.checkpoint, **options)
    source = pipe.model if pipe is not None and pipe.model else "tiny-llama"
    if source != "tiny-llama":
        from .models import from_callable, source_label

        return from_callable(source, where=source_label(None, pipe))
    return llama.tiny_llama(**options)


def cmd_run(args: argparse.Namespace) -> int:
    import attrs

    from pteflow.ir import Level
    from pteflow.ir.errors import UserError

    pipe, specs = _specs(args)
    if args.output is not None:
        from .spec import apply_overrides

        if not any(s.name == "emit" for s in specs):
            raise UserError("-o given, but the pipeline has no emit pass; add emit")
        specs = apply_overrides(specs, [f"emit.path={args.output}"])
    registry, passes = _build(specs, args.plugin, no_delegate=args.no_delegate)
    dropped = _dropped_for_delegation(specs, passes) if args.no_delegate else []
    from .outputs import check_run

    check_run(args, passes)  # before any work: a .pte/report/dump path that cannot be written
    from .debug import parse_selection

    names = [p.name for p in passes]
    print_after = parse_selection(args.print_ir_after, "--print-ir-after", names)
    print_before = parse_selection(args.print_ir_before, "--print-ir-before", names)

    from pteflow.ir.errors import UnavailableError
    from pteflow.passes import PassManager

    manager = PassManager(passes, verify=args.checks, registry=registry)
    try:
        manager.check_available()  # before any work: a missing SDK is known in a second
    except UnavailableError as e:
        from pteflow.ir import facts

        quantized = any(p.contract.provides & facts.QUANTIZATION for p in passes)
        if quantized and any(p.contract.delegation and p.unavailable_reason() for p in passes):
            raise UnavailableError(
                f"{e}; or run with --no-delegate to check the backend-quantized graph without it"
            ) from None
        raise
    if not args.model:
        # Refuse an unschedulable pipeline before paying for torch and the model.
        # (--model sources are planned once loaded: only then are their facts known.)
        manager.plan(initial_facts=_source_facts(pipe))

    from .verify import tolerance_for

    tolerance = tolerance_for(args.tol, pipe, passes, no_delegate=args.no_delegate)
    cache = None
    if not args.no_cache:  # a bad --cache-dir/--cache-size is refused before any work
        cache = _cache(args)
        cache.check_writable()

    t0 = time.perf_counter()
    model = _load_model(args, pipe)
    _say(f"model: {model.description}")
    if model.program.level > Level.EAGER:  # a Program given at a later level
        from .models import fit_to_level, source_label

        where = source_label(args.model, pipe)
        passes, done_already = fit_to_level(passes, model.program.level, where)
        manager = PassManager(passes, verify=args.checks, registry=registry)
        if done_already:
            _say(f"left out (the model is already past them): {', '.join(done_already)}")
    model = attrs.evolve(model, tolerance=tolerance)
    load_s = time.perf_counter() - t0

    total = len(passes)
    done = [0]
    printing = args.print_ir_before or args.print_ir_after or args.print_changed
    end = "\n" if printing else ""  # printed IR goes between a pass's start and end

    def on_event(kind: str, pos: int, p: Any, record: Any) -> None:
        if kind == "restart":  # the cache's warning said why; the passes run again
            done[0] = 0
            print(flush=True)
        elif kind == "start":
            done[0] += 1
            print(f"[{done[0]:2d}/{total}] {p.describe()} ...", end=end, flush=True)
        else:
            changed = "" if record.modified else "  (no change)"
            cached = "  (cached)" if getattr(record, "cached", False) else ""
            _say(f" {record.wall_s:.2f}s{changed}{cached}")

    observers, numerics = _observers(args, manager, model, print_before, print_after)
    emits = [p for p in passes if p.name == "emit"]
    pte = Path(emits[0].path) if emits else None
    do_verify = (
        args.verify
        if args.verify is not None
        else (pte is not None and (pipe.verify if pipe else True))
    )
    if do_verify and pte is None:
        raise UserError("--verify needs a .pte: add the emit pass")
    quantized_ref = None
    if do_verify:
        # a quantized .pte must compute what the eager model with the same quantization
        # computes: keep the program right after the last quantizing pass as the reference
        from .verify import QuantizedReference

        ordered = manager.plan(
            start_level=model.program.level, initial_facts=model.program.facts
        ).ordered_passes()
        quantized_ref = QuantizedReference.for_run(ordered, model)
        if quantized_ref is not None:
            observers.append(quantized_ref)
    watching = sorted({o.flag for o in observers if o.needs_every_pass})
    if cache is not None and watching:
        _say(f"cache: not used ({', '.join(watching)} must see every pass run)")
        cache = None
    result = manager.run(model.program, on_event=on_event, observers=observers, cache=cache)

    verification = None
    if do_verify and pte is not None:
        from .verify import verify_run

        verification = verify_run(
            pte, model, quantized_ref, checks=args.checks, registry=registry, cache=cache
        )
    not_delegated = _not_delegated_note(dropped) if args.no_delegate else None
    if not_delegated:
        _say(not_delegated)

    _print_summary(result, pte, verification)
    from .debug import timing_rows, timing_table

    if args.timing:
        _say(timing_table(result.records))
    if numerics is not None:
        from .numerics import numerics_table

        _say(numerics_table(numerics.rows, model.tolerance))
        _say(f"numerics: {numerics.eval_s:.2f}s of evaluation")
    arbitration = _arbitration(result.program)
    report = {
        "pipeline": pipe.name if pipe else args.passes,
        "model": model.description,
        "load_s": load_s,
        "schedule_s": result.schedule_s,
        "cache": result.cache,
        "order": [p.describe() for p in result.plan.ordered_passes()],
        "passes": [r.to_json() for r in result.records],
        "pte": str(pte) if pte else None,
        "pte_bytes": pte.stat().st_size if pte else None,
        "verification": verification.to_json() if verification else None,
        "no_delegate": {"dropped": dropped, "note": not_delegated} if args.no_delegate else None,
        "timing": timing_rows(result.records),
        "numerics": [r.to_json() for r in numerics.rows] if numerics is not None else None,
        "numerics_eval_s": numerics.eval_s if numerics is not None else None,
        "arbitration": arbitration.to_json() if arbitration else None,
    }
    report_path = (
        Path(args.report) if args.report else (pte.with_suffix(".report.json") if pte else None)
    )
    if report_path:
        from pteflow.passes.emit.write_pte import write_atomically

        write_atomically(report_path, json.dumps(report, indent=2, default=str).encode())
        _say(f"report: {report_path}")
    if verification is not None and verification.failed:
        _say(f"VERIFICATION FAILED: {verification.why_failed()}; {pte} is kept for inspection")
        return 1
    return 0


def _not_delegated_note(dropped: list[str]) -> str:
    """What --no-delegate left out, said plainly (the report carries it too)."""
    if not dropped:
        return "--no-delegate: the pipeline has no delegation passes; nothing was left out"
    backends = sorted({n.split("-")[-1] if n.startswith("partition-") else "" for n in dropped})
    names = ", ".join(b.upper() for b in backends if b) or "any backend"
    return (
        f"NOT DELEGATED (--no-delegate): this .pte is not {names}-delegated; it runs the "
        f"backend-prepared graph on portable kernels. Left out {len(dropped)} pass(es): "
        f"{', '.join(dropped)}"
    )


def _observers(
    args: argparse.Namespace, manager: Any, model: Any, before: Any, after: Any
) -> tuple[list, Any]:
    """The run's PassObservers from the debugging flags; the numerics tracker if on."""
    from .debug import DumpDir, IRPrinter
    from .plugins import absolute
    from .repro import ReproRecorder

    ordered = manager.plan(
        start_level=model.program.level, initial_facts=model.program.facts
    ).ordered_passes()
    observers: list = [
        ReproRecorder(
            Path(args.repro_dir),
            ordered,
            verify=args.checks,
            plugins=absolute(args.plugin),
            eager_input=model.reference,  # untouched until verification, after the run
        )
    ]
    if before or after or args.print_changed:
        observers.append(IRPrinter(before=before, after=after, changed=args.print_changed))
    if args.dump_dir:
        observers.append(DumpDir(Path(args.dump_dir)))
    numerics = None
    if args.track_numerics:
        from .numerics import NumericsTracker

        numerics = NumericsTracker(model.reference, model.steps, model.tolerance)
        observers.append(numerics)
    return observers, numerics


def cmd_bisect(args: argparse.Namespace) -> int:
    import tempfile

    from pteflow.ir.errors import UserError

    from .bisect import bisect
    from .spec import apply_overrides

    if args.tol is None:
        raise UserError("bisect needs a tolerance: --tol X (e.g. --tol 1e-4)")
    if not args.tol >= 0:
        raise UserError(f"--tol must be a number >= 0, got {args.tol}")
    pipe, specs = _specs(args)
    with tempfile.TemporaryDirectory(prefix="pteflow-bisect-") as tmp:
        if any(s.name == "emit" for s in specs):  # probes must not overwrite the .pte
            specs = apply_overrides(specs, [f"emit.path={Path(tmp) / 'probe.pte'}"])
        registry, passes = _build(specs, args.plugin)

        def load() -> Any:
            return _load_model(args, pipe)

        def on_probe(p: Any) -> None:
            state = "BAD" if p.bad else "good" if p.evaluable else "not evaluable"
            _say(f"probe: first {p.k} passes: {state}")

        result = bisect(
            load,
            passes,
            tolerance=args.tol,
            verify=args.checks,
            registry=registry,
            on_probe=on_probe,
        )
    _say(result.render())
    return 1 if result.first_bad is not None else 0


def cmd_repro(args: argparse.Namespace) -> int:
    from .repro import load, replay

    info = load(Path(args.dir), trust=args.trust)
    _say(
        f"replaying {info['pass_described']} on the input in {args.dir} "
        f"({len(info['replay'])} pass(es) replayed first)"
    )
    got = replay(Path(args.dir), trust=args.trust)
    if got.error is not None and getattr(args, "debug", False):
        raise got.error
    if got.reproduced:
        _say(f"reproduced in {got.seconds:.2f}s: {got.got}")
        return 1
    if got.got is None:
        _say(f"did not reproduce: the pass now runs cleanly (expected {got.expected})")
        return 0
    _say(f"a different failure: {got.got}\n  (recorded: {got.expected})")
    return 1


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
    stats = getattr(result, "cache", None) or {}
    cache_s = stats.get("load_s", 0.0) + stats.get("store_s", 0.0)
    total = sum(r.wall_s for r in result.records) + cache_s
    _say(
        f"total {total:.2f}s over {len(result.records)} passes "
        f"(scheduling {result.schedule_s * 1000:.1f} ms"
        + (
            f"; pass cache: load {stats.get('load_s', 0.0):.2f}s, "
            f"store {stats.get('store_s', 0.0):.2f}s)"
            if stats
            else ")"
        )
    )
    n_cached = sum(getattr(r, "cached", False) for r in result.records)
    if n_cached:
        _say(f"cached: {n_cached} of {len(result.records)} passes restored from the pass cache")
    if pte is not None and pte.exists():
        _say(f"wrote {pte} ({pte.stat().st_size / 1e6:.2f} MB)")
    arbitration = _arbitration(result.program)
    if arbitration is not None:
        _say(arbitration.render())
    if verification is not None:
        _say(verification.summary())


def cmd_check_coverage(args: argparse.Namespace) -> int:
    import importlib

    from pteflow.ir import Level
    from pteflow.ir.errors import UserError
    from pteflow.passes import PassManager

    if args.no_delegate:
        raise UserError("check-coverage asks what a backend takes; drop --no-delegate")
    pipe, specs = _specs(args)
    registry, passes = _build(specs, args.plugin)
    if args.json:
        from .outputs import check_file

        check_file(Path(args.json), "--json")  # before any work
    partitioners = [p for p in passes if p.contract.ordered and p.contract.delegation]
    checks = {}
    for p in partitioners:
        backend = p.contract.delegation
        module = importlib.import_module(f"pteflow.backends.{backend}")
        if hasattr(module, "coverage"):
            checks[backend] = module.coverage
    if not checks:
        have = ", ".join(sorted({p.contract.delegation for p in partitioners})) or "none"
        raise UserError(
            f"no partition pass of this pipeline has a coverage check (partitioners: {have}); "
            "check-coverage knows qnn (try --pipeline qnn_default)"
        )
    # everything up to the partitioner: source, quantization, export, edge passes
    before = [p for p in passes if p not in partitioners and p.contract.level_out <= Level.EDGE]
    manager = PassManager(before, verify=args.checks, registry=registry)
    manager.check_available()
    manager.plan(initial_facts=_source_facts(pipe))
    model = _load_model(args, pipe)
    _say(f"model: {model.description}")
    _say(f"running {len(before)} passes up to {', '.join(p.name for p in partitioners)}")
    program = manager.run(model.program).program
    gaps = 0
    report: dict[str, Any] = {"pipeline": pipe.name if pipe else args.passes, "backends": {}}
    for backend, check in checks.items():
        result = check(program)
        _say(f"\n{backend}:")
        _say(result.render())
        gaps += len(result.gaps)
        report["backends"][backend] = {
            "nodes": [
                {"method": n.method, "node": n.node, "op": n.op, "status": n.status}
                for n in result.nodes
            ],
            "gaps": [n.node for n in result.gaps],
        }
    if args.json:
        from pteflow.passes.emit.write_pte import write_atomically

        write_atomically(Path(args.json), json.dumps(report, indent=2).encode())
        _say(f"coverage: {args.json}")
    return 1 if gaps else 0


def _arbitration(program: Any) -> Any:
    """Which partition pass claimed each node (None when no partition pass recorded it)."""
    from pteflow.passes.partition.arbitration import arbitration

    return arbitration(program)


COMMANDS = {
    "run": cmd_run,
    "plan": cmd_plan,
    "list": cmd_list,
    "check-coverage": cmd_check_coverage,
    "bisect": cmd_bisect,
    "repro": cmd_repro,
    "cache": cmd_cache,
    "qnn-sdk": qnn_sdk.cmd_qnn_sdk,
}


def _repro_hint(e: BaseException) -> None:
    where = getattr(e, "repro_dir", None)
    if where is not None:
        sys.stderr.write(f"driver: reproduce it alone with: driver repro {where}\n")


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
        _repro_hint(e)
        return 1
    except InvariantError as e:
        if debug:
            raise
        sys.stderr.write(f"driver: {e} (run with --debug for the traceback)\n")
        _repro_hint(e)
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("driver: interrupted\n")
        return 130
