"""What the commands share: the parser class, the flag groups, and argv -> typed options.

Each ``*_options(args)`` is the one place a command's flags become the API's options
(``driver/options.py``); nothing past the command module sees the argparse namespace.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def say(text: str = "") -> None:
    print(text, flush=True)


def echo(text: str) -> None:
    """The API's text sink for ``driver``: stdout as it is now (tests swap it)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def warn(message: str) -> None:
    sys.stderr.write(f"driver: warning: {message}\n")


def debug_flag(sp: argparse.ArgumentParser, text: str = "show tracebacks on errors") -> None:
    sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=text)


def pipeline_args(sp: argparse.ArgumentParser) -> None:
    """--pipeline | --passes, --no-delegate, --set, --plugin."""
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
    debug_flag(sp)
    sp.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE|FILE.py",
        help="load the passes a module defines, for this run (repeatable)",
    )


def model_args(sp: argparse.ArgumentParser) -> None:
    """--model, --params, --checkpoint, --hf, --max-seq-len, --max-context-len, --metadata."""
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
        "--hf",
        metavar="DIR",
        help="a local Hugging Face model directory (config.json, *.safetensors); "
        "driver list models shows the architectures",
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
    model.add_argument(
        "--metadata",
        metavar="JSON",
        help="constant methods to add to or override in the .pte, as export_llama's -m: "
        '\'{"get_bos_id": 1, "get_eos_ids": [2, 32000]}\'',
    )


def calibration_args(sp: argparse.ArgumentParser) -> None:
    """--calibration-text FILE, --tokenizer, --calibration-seq-len, --calibration-limit."""
    g = sp.add_argument_group("calibration of pt2e quantizers (xnnpack_pt2e, qnn_default)")
    g.add_argument(
        "--calibration-text",
        metavar="FILE",
        help="calibrate on this text, tokenized with the model's tokenizer (one sequence "
        "per blank-line separated paragraph), as export_llama's --calibration_data",
    )
    g.add_argument(
        "--tokenizer",
        metavar="DIR|FILE",
        help="the tokenizer for --calibration-text (default: the --hf directory)",
    )
    g.add_argument(
        "--calibration-seq-len",
        type=int,
        metavar="N",
        help="tokens per calibration sequence (default: the model's max_seq_len)",
    )
    g.add_argument("--calibration-limit", type=int, metavar="N", help="at most N paragraphs")


def calibration_overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set pt2e-calibrate.*`` overrides the calibration flags stand for."""
    from pteflow.ir.errors import UserError

    text = getattr(args, "calibration_text", None)
    tokenizer = getattr(args, "tokenizer", None) or getattr(args, "hf", None)
    rest = ("calibration_seq_len", "calibration_limit", "tokenizer")
    if text is None:
        given = [f"--{k.replace('_', '-')}" for k in rest if getattr(args, k, None) is not None]
        if given:
            raise UserError(f"{', '.join(given)} only apply with --calibration-text FILE")
        return []
    if not tokenizer:
        raise UserError(
            "--calibration-text needs the model's tokenizer: --tokenizer DIR|FILE "
            "(or --hf DIR, whose tokenizer is used)"
        )

    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    out = [
        f"pt2e-calibrate.text_file={quoted(text)}",
        f"pt2e-calibrate.tokenizer={quoted(tokenizer)}",
    ]
    if args.calibration_seq_len is not None:
        out.append(f"pt2e-calibrate.seq_len={args.calibration_seq_len}")
    if args.calibration_limit is not None:
        out.append(f"pt2e-calibrate.limit={args.calibration_limit}")
    return out


def checks_arg(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--checks",
        choices=("each", "boundaries", "off"),
        default="boundaries",
        help="when the manager checks level invariants and claimed facts "
        "(default: boundaries = after level changes and at the end)",
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


def pipeline_options(args: argparse.Namespace) -> Any:
    """``PipelineOptions`` from --pipeline/--passes/--set/--plugin/--no-delegate."""
    from ..options import PipelineOptions

    return PipelineOptions(
        pipeline=args.pipeline,
        passes=args.passes,
        overrides=[*args.set, *calibration_overrides(args)],
        plugins=args.plugin,
        no_delegate=getattr(args, "no_delegate", False),
    )


def model_options(args: argparse.Namespace) -> Any:
    """``ModelOptions`` from --model/--params/--checkpoint/--max-seq-len/--max-context-len."""
    from ..options import ModelOptions

    return ModelOptions(
        source=args.model,
        params=args.params,
        checkpoint=args.checkpoint,
        max_seq_len=args.max_seq_len,
        max_context_len=args.max_context_len,
        hf=getattr(args, "hf", None),
        metadata=getattr(args, "metadata", None),
    )


def cache_options(args: argparse.Namespace) -> Any:
    """``CacheOptions`` from --no-cache/--cache-dir/--cache-size."""
    from ..options import CacheOptions

    return CacheOptions(
        enabled=not getattr(args, "no_cache", False),
        directory=args.cache_dir,
        size=args.cache_size,
    )


def console_args(sp: argparse.ArgumentParser) -> None:
    """-v / -q: how much a run prints (upstream warnings go to the run log either way)."""
    g = sp.add_mutually_exclusive_group()
    g.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also print the per-pass table, what each pass logged, and upstream warnings "
        "and C++ stderr as they happen (they always go to the run log, m.log beside the report)",
    )
    g.add_argument("-q", "--quiet", action="store_true", help="print only the result and errors")


def console_options(args: argparse.Namespace) -> Any:
    """``ConsoleOptions`` from -v/-q/--debug and whether stdout is a terminal."""
    import os

    from ..options import ConsoleOptions

    verbose = args.verbose or getattr(args, "debug", False)
    tty = sys.stdout.isatty() and not os.environ.get("CI")
    return ConsoleOptions(
        verbosity="verbose" if verbose else ("quiet" if args.quiet else "normal"),
        live=tty,
    )
