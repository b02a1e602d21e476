"""``driver run``: compile a model to a .pte (``pteflow.compile``)."""

from __future__ import annotations

import argparse
from typing import Any

from .args import (
    cache_args,
    cache_options,
    calibration_args,
    checks_arg,
    console_args,
    console_options,
    model_args,
    model_options,
    pipeline_args,
    pipeline_options,
    say,
    warn,
)

EXAMPLES = """\
examples:
  driver run --pipeline xnnpack_default -o llama.pte
  driver run --model mypkg.models:build --passes export,to-edge,to-executorch,emit -o m.pte
  driver run --pipeline my_pipeline.toml --set to-edge.skip_dim_order=true
  driver run --pipeline qnn_default --no-delegate -o qnn_quant.pte   # no QNN SDK needed
  driver run --pipeline qnn_default --set pt2e-prepare.quantizer=qnn-8a8w --no-delegate
  driver run --pipeline xnnpack_default --track-numerics --timing --print-changed
  driver run --pipeline xnnpack_default --track-numerics --plot drift.png
  driver run --pipeline xnnpack_default -o m.pte --etrecord m.etrecord   # for devtools
  driver run --hf DIR --pipeline xnnpack_8da4w -o m.pte --metadata '{"get_eos_ids": [2, 7]}'
  driver run --hf DIR --pipeline xnnpack_pt2e --calibration-text corpus.txt -o m.pte
"""


def add_parser(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="compile a model to a .pte",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Schedule the pipeline's passes, run them with checks "
        "between passes, write the .pte and a JSON report.",
    )
    pipeline_args(run)
    model_args(run)
    checks_arg(run)
    calibration_args(run)
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
    run.add_argument(
        "--etrecord",
        metavar="PATH",
        help="also write ExecuTorch's ETRecord (edge and ExecuTorch programs, debug "
        "handles) for executorch.devtools.Inspector",
    )
    console_args(run)
    debug_args(run)
    cache_args(run, no_cache=True)


def debug_args(run: argparse.ArgumentParser) -> None:
    """The 'which pass broke it' options (driver/debug.py, numerics.py, repro.py)."""
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
        "--plot",
        metavar="FILE.png",
        help="with --track-numerics: draw the error per pass (log scale, with the "
        "tolerance) to FILE.png or FILE.svg (needs the plot extra)",
    )
    g.add_argument(
        "--repro-dir",
        metavar="DIR",
        default="pteflow-repro",
        help="where a failing pass's reproducer goes (default: ./pteflow-repro)",
    )


def options(args: argparse.Namespace) -> Any:
    """The ``RunOptions`` of ``driver run``'s flags."""
    from ..options import DebugOptions, RunOptions

    if args.plot:
        from pteflow.ir.errors import OptionError

        from ..plot import PLOT_SUFFIXES, check_suffix

        if not args.track_numerics:
            raise OptionError("--plot draws --track-numerics: add --track-numerics")
        check_suffix(args.plot, PLOT_SUFFIXES, "--plot")
    return RunOptions(
        pipeline=pipeline_options(args),
        model=model_options(args),
        checks=args.checks,
        output=args.output,
        verify=args.verify,
        tol=args.tol,
        report=args.report,
        cache=cache_options(args),
        debug=DebugOptions(
            print_ir_after=args.print_ir_after,
            print_ir_before=args.print_ir_before,
            print_changed=args.print_changed,
            dump_dir=args.dump_dir,
            timing=args.timing,
            track_numerics=args.track_numerics,
            plot=args.plot,
            repro_dir=args.repro_dir,
        ),
        console=console_options(args),
        etrecord=args.etrecord,
        keep_program=False,  # nothing after the run reads it: release it before the load
    )


def main(args: argparse.Namespace) -> int:
    from ..run import run
    from .args import echo

    result = run(options(args), echo=echo, warn=warn)
    if not result.ok:
        why = result.verification.why_failed()
        say(f"VERIFICATION FAILED: {why}; {result.pte} is kept for inspection")
        return 1
    return 0
