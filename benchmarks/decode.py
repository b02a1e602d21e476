"""Decode latency of two ``.pte`` files, measured so that the machine's state changes
alike for both: a single-token decode step in ``executorch.runtime``.

``decode_pair(ours, ref, vocab)``: rounds, each loading both files afresh, in pairs: ours
loaded first in one round of a pair, the reference in the other. Where both fit in memory
together their steps alternate one by one (the same tokens at the same positions), else
each file's steps run in turn. A round gives each file's median step; a pair, the
geometric mean of its two rounds' ratios ours / ref. The comparison's ratio is the median
over the pairs, with a distribution-free 95% interval for it (order statistics).

Why rounds of fresh loads: one load's speed is a draw. Two files the runtime runs alike,
both loaded once with their steps interleaved, read 1.02, 1.09 and 0.94 in three such
comparisons in a row (135M, 16 ms steps); one round each, one file after the other, the
ratio moved by up to 45% between runs (135M pt2e read 1.44 in one run and ~1.00 after).
Why ratios within a round: the machine moves between rounds (one file's step from 2.7 to
3.5 ms within minutes on the Xeon VM); a ratio of two files measured together cancels it.
Why pairs: the file loaded first of the two steps 1.5-2.5% slower (a file against a copy
of itself, stories, Xeon VM), so each pair holds one round of each order. And each
round's programs are released before the next round loads: held until then, the first
argument read 1.5-8% slower than a copy of itself. A file against a copy of itself now
reads 0.996-1.010, its interval 1-5% either side: a ratio of 1.01 is only "slower" when
the interval's low end is above 1.00 too. Files too large to hold together (Llama-3.2-1B's:
6 GB each, twice that once XNNPACK packs the weights) run one after the other, in fewer
rounds.

    python benchmarks/decode.py OURS.pte REF.pte --vocab 32000   # compare two files
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Pairs of rounds of the decode comparison (both files loaded afresh in each round, which
#: first alternating): where both files fit in memory together, else (each round then
#: loads two large files in turn) fewer.
DECODE_PAIRS = 10
SEPARATE_PAIRS = 4
#: Both files load together (and interleave) up to this many bytes in all.
INTERLEAVE_MAX_BYTES = 3 << 30
#: Steps before measuring (the first ones warm caches up), then steps measured per file.
WARMUP_STEPS = 8
MEASURED_STEPS = 56


class _Decoder:
    """One loaded program's ``forward``, stepped token by token."""

    def __init__(self, pte: Path):
        from pteflow.ir.evaluate import load_runtime_program

        self.pte = pte
        self.program = load_runtime_program(pte.read_bytes())
        self.method = self.program.load_method("forward")

    def step(self, token: Any, pos: int) -> float:
        import time

        import torch

        t0 = time.perf_counter()
        self.method.execute([token, torch.tensor([pos])])
        return time.perf_counter() - t0


def _tokens(vocab: int, steps: int) -> list[Any]:
    import torch

    gen = torch.Generator().manual_seed(0)
    return [torch.randint(0, vocab, (1, 1), generator=gen) for _ in range(steps)]


def decode_ms(pte: Path, vocab: int, max_seq_len: int = 128) -> float:
    """Median wall time (ms) of one single-token decode step of ``pte`` alone."""
    return _timed([_Decoder(pte)], vocab, max_seq_len)[0]


class MedianRatio:
    """A ratio measured once per round (or pair of rounds): ``ratios``, their median and a
    distribution-free interval of at least 95% for it (order statistics; with under six
    values, their whole range)."""

    ratios: Sequence[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def interval(self) -> tuple[float, float]:
        return median_interval(self.ratios)


def interval_cell(value: float | None, interval: Sequence[float], rounds: int) -> str:
    """A table cell for a ``MedianRatio``: ``1.01 (0.99-1.03)``; ``1.01 (one round)`` when
    there is no spread to show; ``-`` with no value."""
    if value is None:
        return "-"
    if rounds == 1:
        return f"{value:.2f} (one round)"
    low, high = interval
    return f"{value:.2f} ({low:.2f}-{high:.2f})"


@dataclass(frozen=True)
class DecodeComparison(MedianRatio):
    """Two files' decode steps over rounds of fresh loads: each file's median step (the
    median over the rounds of each round's median) and each pair of rounds' ratio ours /
    ref (the geometric mean of a round with ours loaded first and one with ref first)."""

    ours_ms: float
    ref_ms: float
    ratios: tuple[float, ...]


def median_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """The order-statistic interval for the median of ``values``: the k-th smallest and
    k-th largest, k the largest rank whose two-sided tail under Binomial(n, 1/2) stays
    within ``1 - confidence``; ``(min, max)`` when no rank does (n < 6 at 95%)."""
    ordered = sorted(values)
    n = len(ordered)
    tail = 0.0
    k = 0  # the values below rank k+1 lie under the median with probability ``tail``
    while k < n // 2:
        tail_next = tail + math.comb(n, k) / 2**n
        if 2 * tail_next > 1 - confidence:
            break
        tail, k = tail_next, k + 1
    low = max(k, 1)
    return ordered[low - 1], ordered[n - low]


def decode_pair(ours: Path, ref: Path, vocab: int, max_seq_len: int = 128) -> DecodeComparison:
    """Both files' decode steps in pairs of rounds, each round loading both afresh, which
    first alternating (module doc); positions stay below ``max_seq_len``."""
    together = ours.stat().st_size + ref.stat().st_size <= INTERLEAVE_MAX_BYTES
    mine, theirs = [], []
    for i in range(2 * (DECODE_PAIRS if together else SEPARATE_PAIRS)):
        ours_first = i % 2 == 0
        if together:
            m, t = _interleaved_round(ours, ref, ours_first, vocab, max_seq_len)
        elif ours_first:
            m, t = decode_ms(ours, vocab, max_seq_len), decode_ms(ref, vocab, max_seq_len)
        else:
            t, m = decode_ms(ref, vocab, max_seq_len), decode_ms(ours, vocab, max_seq_len)
        mine.append(m)
        theirs.append(t)
    rounds = [m / t for m, t in zip(mine, theirs, strict=True)]
    ratios = tuple(math.sqrt(x * y) for x, y in zip(rounds[::2], rounds[1::2], strict=True))
    return DecodeComparison(statistics.median(mine), statistics.median(theirs), ratios)


def _interleaved_round(
    ours: Path, ref: Path, ours_first: bool, vocab: int, max_seq_len: int
) -> list[float]:
    """One round, both files loaded (which first as told) and their steps interleaved.

    Its own function so that both programs are released when it returns, before the
    next round loads: held across the next loads (a name rebound only after the new
    program exists), each new load found the heap as the other file's release left it,
    and the first file read 1.5-8% slower than a copy of itself (Xeon VM, stories)."""
    if ours_first:
        a = _Decoder(ours)
        b = _Decoder(ref)
    else:
        b = _Decoder(ref)
        a = _Decoder(ours)
    return _timed([a, b], vocab, max_seq_len)


def _timed(decoders: list[_Decoder], vocab: int, max_seq_len: int) -> list[float]:
    """Each decoder's median step (ms) over the same tokens at the same positions, the
    first steps left out (they warm caches up); two decoders' steps alternate one by one,
    which first alternating."""
    steps = min(WARMUP_STEPS + MEASURED_STEPS, max_seq_len)
    warm = min(WARMUP_STEPS, steps // 4)
    times: list[list[float]] = [[] for _ in decoders]
    for pos, tok in enumerate(_tokens(vocab, steps)):
        order = list(range(len(decoders)))
        for k in order if pos % 2 == 0 else order[::-1]:
            took = decoders[k].step(tok, pos)
            if pos >= warm:
                times[k].append(took)
    return [statistics.median(t) * 1000 for t in times]


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Compare two .pte files' decode step latency.")
    ap.add_argument("ours", type=Path)
    ap.add_argument("ref", type=Path)
    ap.add_argument("--vocab", type=int, required=True, help="the models' vocabulary size")
    ap.add_argument("--max-seq-len", type=int, default=128)
    args = ap.parse_args()
    for pte in (args.ours, args.ref):
        if not pte.is_file():
            ap.error(f"{pte} is not a file")
    if args.vocab < 1 or args.max_seq_len < 1:
        ap.error("--vocab and --max-seq-len must be at least 1")
    try:
        got = decode_pair(args.ours, args.ref, args.vocab, args.max_seq_len)
    except Exception as e:  # a file the runtime cannot load or run: one line, as tools do
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        ap.exit(2, f"decode.py: the runtime cannot decode with these files ({first})\n")
    low, high = got.interval
    print(
        f"decode {got.ours_ms:.3f} / {got.ref_ms:.3f} ms a step; ratio {got.ratio:.3f} "
        f"(95% interval {low:.3f}-{high:.3f}, {len(got.ratios)} pairs of rounds)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
