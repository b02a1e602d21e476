"""pteflow vs ExecuTorch's own LLM export, in one run: wall time, peak RSS, .pte size, decode.

For each named pipeline and the matching export_llama flags (benchmarks/reference.py),
both flows export the same random checkpoint in their own subprocess; then both .pte
files decode the same tokens in executorch.runtime. Ratios are pteflow / reference:
the targets are <= 1.0 for wall time, peak RSS and size, and <= 1.05 for decode latency.
The manager's own share (scheduling + checks, from pteflow's JSON report) is printed too.

    python benchmarks/bench_export.py --size tiny
    python benchmarks/bench_export.py --size stories --pipelines xnnpack_default
    python benchmarks/bench_export.py --size smollm2-135m-hf   # a Hugging Face directory

The ``-hf`` sizes (benchmarks/hf_checkpoint.py) write a random Hugging Face directory that
pteflow reads with ``--hf``; export_llama gets the same weights as params.json + Meta-named
consolidated.pth, converted by pteflow's own HF -> Meta conversion.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.hf_checkpoint import HF_SIZES, pteflow_hf_command, write_hf_checkpoint
from benchmarks.reference import (
    SIZES,
    _wait,
    pteflow_command,
    run_reference,
    write_checkpoint,
)

PIPELINES = ("xnnpack_default", "xnnpack_8da4w", "xnnpack_pt2e", "portable_default")


def run_pteflow(
    pipeline: str, params: Path, ckpt: Path, out: Path, max_seq_len: int, hf: Path | None = None
) -> dict:
    """``driver run`` in a subprocess, measured like the reference (wall, own peak RSS).

    With ``hf``, pteflow reads that Hugging Face directory instead of params + ckpt.
    """
    pte = out / f"{pipeline}.pte"
    # a cold compile, like the reference (bench_cache.py measures reuse)
    if hf is not None:
        cmd = pteflow_hf_command(
            pipeline, hf, pte, max_seq_len=max_seq_len, extra_args=["--no-cache"]
        )
    else:
        cmd = pteflow_command(
            pipeline, params, ckpt, pte, max_seq_len=max_seq_len, extra_args=["--no-cache"]
        )
    log = out / f"{pipeline}.pteflow.log"
    with open(log, "wb") as f:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=out)
        status, rusage = _wait(proc, None)
        wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"pteflow {pipeline} failed; see {log}")
    report = json.loads(pte.with_suffix(".report.json").read_text())
    checks = sum(p["check_s"] for p in report["passes"])
    return {
        "wall_s": wall,
        "peak_rss_mb": rusage.ru_maxrss / 1024,
        "pte": pte,
        "manager_s": report["schedule_s"] + checks,
        "passes_s": sum(p["wall_s"] for p in report["passes"]),
    }


def decode_ms(pte: Path, vocab: int, steps: int = 32) -> float:
    """Median wall time of one single-token decode step in executorch.runtime."""
    import torch

    from pteflow.ir.evaluate import load_runtime_program

    program = load_runtime_program(pte.read_bytes())
    method = program.load_method("forward")
    gen = torch.Generator().manual_seed(0)
    times = []
    for pos in range(steps):
        tok = torch.randint(0, vocab, (1, 1), generator=gen)
        t0 = time.perf_counter()
        method.execute([tok, torch.tensor([pos])])
        times.append(time.perf_counter() - t0)
    del method, program
    return statistics.median(times[4:]) * 1000  # the first steps warm caches up


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES) + sorted(HF_SIZES), default="tiny")
    ap.add_argument("--pipelines", default=",".join(PIPELINES))
    ap.add_argument("--out", help="keep the files here (default: a temporary directory)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        hf: Path | None = None
        if args.size in HF_SIZES:
            max_seq_len = HF_SIZES[args.size][1]
            hf, params, ckpt, vocab = write_hf_checkpoint(out / "ckpt", args.size)
        else:
            params_dict, max_seq_len = SIZES[args.size]
            vocab = params_dict["vocab_size"]
            params, ckpt = write_checkpoint(out / "ckpt", args.size)
        rows = []
        for name in args.pipelines.split(","):
            ref = run_reference(name, params, ckpt, out / "ref", max_seq_len=max_seq_len)
            ours = run_pteflow(name, params, ckpt, out, max_seq_len, hf)
            ref_ms, our_ms = decode_ms(Path(ref.pte_path), vocab), decode_ms(ours["pte"], vocab)
            row = {
                "pipeline": name,
                "wall": ours["wall_s"] / ref.wall_s,
                "rss": ours["peak_rss_mb"] / ref.peak_rss_mb,
                "size": ours["pte"].stat().st_size / Path(ref.pte_path).stat().st_size,
                "decode": our_ms / ref_ms,
                "manager_share": ours["manager_s"] / ours["wall_s"],
                "abs": f"wall {ours['wall_s']:.1f}/{ref.wall_s:.1f}s rss "
                f"{ours['peak_rss_mb']:.0f}/{ref.peak_rss_mb:.0f}MB decode "
                f"{our_ms:.3f}/{ref_ms:.3f}ms",
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        print(
            f"\nsize={args.size}  ratios are pteflow / export_llama (targets: wall, rss, "
            "size <= 1.0; decode <= 1.05; manager share < 5%)"
        )
        print(
            f"{'pipeline':18s} {'wall':>6s} {'rss':>6s} {'size':>6s} {'decode':>7s} "
            f"{'manager':>8s}  absolute (pteflow/reference)"
        )
        for r in rows:
            print(
                f"{r['pipeline']:18s} {r['wall']:6.2f} {r['rss']:6.2f} {r['size']:6.2f} "
                f"{r['decode']:7.2f} {r['manager_share']:7.1%}  {r['abs']}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
