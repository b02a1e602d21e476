"""Run ExecuTorch's own LLM export flow and measure it: the reference pteflow is compared with.

The reference is ``python -m executorch.examples.models.llama.export_llama`` (which drives
``LLMEdgeManager``), run in a subprocess on a random checkpoint, so its imports, wall time and
peak memory are its own. For each variant this reports the wall time of the subprocess, its
peak RSS (``os.wait4`` of that very child, so runs in one process do not mix) and the size of
the ``.pte`` it wrote.

    python benchmarks/reference.py --size tiny                 # every variant, tiny config
    python benchmarks/reference.py --size tiny --variants xnnpack_default --json out.json

Importable: ``run_reference(variant, params, checkpoint, out_dir)`` runs one variant;
``write_checkpoint(out_dir, size)`` writes a seeded random ``params.json`` +
``consolidated.pth`` pair in the Meta format export_llama reads.

Trap: export_llama takes the sequence lengths on its command line
(``--max_seq_length`` / ``--max_context_length``); a ``max_seq_len`` key in params.json
makes it fail with a TypeError, so the params written here never carry one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

#: The flags of each variant besides the files and lengths (see REFERENCE.md).
VARIANTS: dict[str, tuple[str, ...]] = {
    "xnnpack_default": ("-kv", "--use_sdpa_with_kv_cache", "-X", "-d", "fp32"),
    "xnnpack_8da4w": (
        "-kv",
        "--use_sdpa_with_kv_cache",
        "-X",
        "-d",
        "fp32",
        "-qmode",
        "8da4w",
        "--group_size",
        "32",
    ),
    "xnnpack_pt2e": (
        "-kv",
        "--use_sdpa_with_kv_cache",
        "-X",
        "-d",
        "fp32",
        "--pt2e_quantize",
        "xnnpack_dynamic",
    ),
    "portable_default": ("-kv", "--use_sdpa_with_kv_cache", "-d", "fp32"),
}

#: Model sizes: params.json content (never max_seq_len) and the sequence length to export with.
#: "tiny" is pteflow's built-in tiny Llama (driver.models.TINY_PARAMS); "stories" is
#: stories-15M-sized (24.4M parameters with its untied output; FFN hidden dim 768).
SIZES: dict[str, tuple[dict[str, Any], int]] = {
    "tiny": ({"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 512}, 128),
    "stories": (
        {"dim": 288, "n_layers": 6, "n_heads": 6, "n_kv_heads": 6, "vocab_size": 32000},
        256,
    ),
    # SmolLM2-135M's shapes with an untied output head (163M parameters, 651 MB fp32)
    "smollm2-135m": (
        {
            "dim": 576,
            "n_layers": 30,
            "n_heads": 9,
            "n_kv_heads": 3,
            "vocab_size": 49152,
            "hidden_dim": 1536,
            "rope_theta": 100000.0,
        },
        256,
    ),
    # Llama-3.2-1B's shapes, untied (1.5B parameters, 6 GB fp32): not for CI, needs ~24 GB
    "llama3.2-1b": (
        {
            "dim": 2048,
            "n_layers": 16,
            "n_heads": 32,
            "n_kv_heads": 8,
            "vocab_size": 128256,
            "hidden_dim": 8192,
            "rope_theta": 500000.0,
        },
        256,
    ),
}


@attrs.frozen
class ReferenceResult:
    """One run of export_llama."""

    variant: str
    command: tuple[str, ...]
    wall_s: float
    peak_rss_mb: float
    pte_path: str
    pte_mb: float
    log_path: str

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


class ReferenceFailedError(RuntimeError):
    """export_llama exited with an error; the message ends with the tail of its log.

    ``peak_rss_mb`` is its peak until it stopped (None when it was not measured), so a run
    killed for memory still states how far it got.
    """

    def __init__(self, message: str, peak_rss_mb: float | None = None) -> None:
        super().__init__(message)
        self.peak_rss_mb = peak_rss_mb


# --------------------------------------------------------------------------- checkpoint


def write_checkpoint(
    out_dir: str | Path,
    size: str = "tiny",
    *,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``params.json`` and a seeded random ``consolidated.pth`` into ``out_dir``.

    Uses ``pteflow.testing.write_random_checkpoint`` when it exists (so pteflow
    and the reference read the very same files); otherwise builds ExecuTorch's own Llama
    definition with seeded random weights and saves its parameters (Meta key names).
    Returns (params_path, checkpoint_path).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p = dict(params if params is not None else SIZES[size][0])
    if "max_seq_len" in p:
        raise ValueError(
            "params for export_llama must not contain max_seq_len "
            "(it takes --max_seq_length on the command line)"
        )
    try:
        from pteflow.testing import write_random_checkpoint
    except ImportError:  # pteflow not there: same format, own weights
        return _write_checkpoint_here(out, p, seed)
    params_path, ckpt_path = write_random_checkpoint(out, seed=seed, **p)
    return Path(params_path), Path(ckpt_path)


def _write_checkpoint_here(out: Path, params: dict[str, Any], seed: int) -> tuple[Path, Path]:
    import torch
    from executorch.examples.models.llama.llama_transformer import construct_transformer
    from executorch.examples.models.llama.model_args import ModelArgs

    torch.manual_seed(seed)
    model = construct_transformer(ModelArgs(**params, max_seq_len=16, max_context_len=16))
    # Parameters only: buffers (RoPE tables, caches) depend on the lengths given at export.
    state = {name: t.detach().clone() for name, t in model.named_parameters()}
    params_path, ckpt_path = out / "params.json", out / "consolidated.pth"
    params_path.write_text(json.dumps(params, indent=2) + "\n")
    torch.save(state, ckpt_path)
    return params_path, ckpt_path


# --------------------------------------------------------------------------- running


def command(
    variant: str,
    params: str | Path,
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    max_seq_len: int,
    name: str | None = None,
    extra_args: Sequence[str] = (),
    python: str = sys.executable,
) -> list[str]:
    """The export_llama command line for ``variant``."""
    if variant not in VARIANTS:
        raise KeyError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    return [
        python,
        "-m",
        "executorch.examples.models.llama.export_llama",
        "-p",
        str(params),
        "-c",
        str(checkpoint),
        *VARIANTS[variant],
        "--max_seq_length",
        str(max_seq_len),
        "--max_context_length",
        str(max_seq_len),
        "-o",
        str(out_dir),
        "--output_name",
        name or variant,
        *extra_args,
    ]


def pteflow_command(
    pipeline: str,
    params: str | Path,
    checkpoint: str | Path,
    pte: str | Path,
    *,
    max_seq_len: int,
    extra_args: Sequence[str] = (),
    python: str = sys.executable,
) -> list[str]:
    """The ``driver run`` command line that compiles what ``command`` does, without verify."""
    model = ["--params", str(params), "--checkpoint", str(checkpoint)]
    return driver_run(pipeline, model, pte, max_seq_len=max_seq_len, extra_args=extra_args,
                      python=python)  # fmt: skip


def driver_run(
    pipeline: str,
    model: Sequence[str],
    pte: str | Path,
    *,
    max_seq_len: int,
    extra_args: Sequence[str] = (),
    python: str = sys.executable,
) -> list[str]:
    """``driver run`` of ``pipeline`` on the model the ``model`` flags name, without verify."""
    return [
        python, "-m", "pteflow.driver", "run", "--pipeline", pipeline, *model,
        "--max-seq-len", str(max_seq_len), "-o", str(pte), "--no-verify", *extra_args,
    ]  # fmt: skip


def run_reference(
    variant: str,
    params: str | Path,
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    max_seq_len: int = 128,
    name: str | None = None,
    extra_args: Sequence[str] = (),
    python: str = sys.executable,
    timeout_s: float | None = None,
) -> ReferenceResult:
    """Run export_llama for ``variant`` in a subprocess and measure it.

    Raises:
        ReferenceFailedError: the subprocess failed or wrote no .pte (with its log's tail).
    """
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    name = name or variant
    cmd = command(
        variant,
        Path(params).resolve(),
        Path(checkpoint).resolve(),
        out,
        max_seq_len=max_seq_len,
        name=name,
        extra_args=extra_args,
        python=python,
    )
    log_path = out / f"{name}.log"
    pte = out / f"{name}.pte"
    pte.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        # cwd=out: export_llama may drop side files (etrecord, .pt2) in the working directory.
        proc = measured_popen(
            cmd, out / f"{name}.peak", stdout=log, stderr=subprocess.STDOUT, cwd=out, env=env
        )
        status, rusage = _wait(proc, timeout_s)
        wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0 or not pte.is_file():
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        why = f"exit code {code}" if code != 0 else f"no {pte} written"
        raise ReferenceFailedError(
            f"export_llama ({variant}) failed: {why}; command: {' '.join(cmd)}\n{tail}",
            peak_rss_mb=rusage.ru_maxrss / 1024,
        )
    return ReferenceResult(
        variant=variant,
        command=tuple(cmd),
        wall_s=wall,
        peak_rss_mb=rusage.ru_maxrss / 1024,  # Linux reports KiB
        pte_path=str(pte),
        pte_mb=pte.stat().st_size / 1e6,
        log_path=str(log_path),
    )


#: Runs ``argv[2:]`` and writes its wait status and peak RSS (KiB) to ``argv[1]``. The
#: peak of a process started by ``subprocess`` (vfork) from this one counts this process's
#: high-water mark as its own (the kernel records the parent's at the child's exec): after
#: a decode measurement that is ~580 MB at stories, so every later run's peak read at least
#: that. Started from this small interpreter instead, a command's peak is its own.
_OWN_PEAK = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[2:])\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "with open(sys.argv[1], 'w') as f:\n"
    "    f.write(f'{status} {usage.ru_maxrss}')\n"
    "code = os.waitstatus_to_exitcode(status)\n"
    "sys.exit(code if code >= 0 else 128 - code)\n"
)


def measured_popen(cmd: Sequence[str], report: Path, **kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen(cmd, **kwargs)`` through ``_OWN_PEAK`` (report: where it writes),
    in a session of its own so a timeout or Ctrl-C kills both; reap with ``_wait``."""
    report.unlink(missing_ok=True)
    wrapped = [sys.executable, "-S", "-c", _OWN_PEAK, str(report), *cmd]
    proc = subprocess.Popen(wrapped, start_new_session=True, **kwargs)
    proc.own_peak_report = report  # type: ignore[attr-defined]
    return proc


def _kill(proc: subprocess.Popen) -> None:
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _wait(proc: subprocess.Popen, timeout_s: float | None) -> tuple[int, Any]:
    """Reap ``proc`` with os.wait4: its own wait status and rusage, not the max over every
    child so far; for a ``measured_popen`` process, the command's own (see ``_OWN_PEAK``)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG if deadline else 0)
            if pid == proc.pid:
                break
            if deadline is not None and time.monotonic() > deadline:
                _kill(proc)
                pid, status, rusage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                raise ReferenceFailedError(f"export_llama timed out after {timeout_s} s")
            time.sleep(0.05)
    except BaseException:  # Ctrl-C: its session does not get the terminal's signal
        if proc.returncode is None:
            _kill(proc)
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from re-waiting
    report = getattr(proc, "own_peak_report", None)
    if report is not None and report.is_file():
        own_status, peak_kib = (int(x) for x in report.read_text().split())
        report.unlink()
        proc.returncode = os.waitstatus_to_exitcode(own_status)
        return own_status, _Usage(peak_kib)
    return status, rusage


@attrs.frozen
class _Usage:
    """The part of ``os.wait4``'s rusage the benchmarks read."""

    ru_maxrss: int  # KiB


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma separated, from: {', '.join(VARIANTS)}",
    )
    ap.add_argument("--out", default="reference_out", help="working directory")
    ap.add_argument("--max-seq-len", type=int, help="default: the size's own")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    max_seq_len = args.max_seq_len or SIZES[args.size][1]
    out = Path(args.out) / args.size
    params, ckpt = write_checkpoint(out, args.size, seed=args.seed)
    results = []
    print(f"{'variant':18} {'wall s':>8} {'peak RSS MB':>12} {'.pte MB':>8}")
    for v in variants:
        try:
            r = run_reference(v, params, ckpt, out, max_seq_len=max_seq_len)
        except ReferenceFailedError as e:
            print(e, file=sys.stderr)
            return 1
        results.append(r)
        print(f"{v:18} {r.wall_s:8.1f} {r.peak_rss_mb:12.0f} {r.pte_mb:8.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_json() for r in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
