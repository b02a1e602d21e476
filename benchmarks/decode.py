"""Decode latency of two ``.pte`` files, measured so that the machine's state changes
alike for both: a single-token decode step in ``executorch.runtime``.

``decode_pair_ms(ours, ref, vocab)``: ``DECODE_ROUNDS`` rounds, each loading both files
afresh (which first alternates); where both fit in memory together their steps alternate
one by one (the same tokens at the same positions), else each file's steps run in turn.
Each file's figure is the median over the rounds of its median step.

Why rounds of fresh loads: one load's speed is a draw. Two files the runtime runs alike,
both loaded once with their steps interleaved, read 1.02, 1.09 and 0.94 in three such
comparisons in a row (135M, 16 ms steps); one round each, one file after the other, the
ratio moved by up to 45% between runs (135M pt2e read 1.44 in one run and ~1.00 after;
1B 100 against 146 ms). The median over rounds takes most of the draw out (seven
interleaved rounds: 0.95, 0.94, 1.00 in a row); the interleaving, what changes on the
machine within a round. Files too large to hold together (Llama-3.2-1B's: 6 GB each,
twice that once XNNPACK packs the weights) run one after the other.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

#: Rounds of the decode comparison: both files loaded afresh in each.
DECODE_ROUNDS = 7
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


def decode_pair_ms(
    ours: Path, ref: Path, vocab: int, max_seq_len: int = 128
) -> tuple[float, float]:
    """``(ours, reference)``: each file's median ms per decode step over ``DECODE_ROUNDS``
    rounds, each round loading both afresh, which first alternating (module doc);
    positions stay below ``max_seq_len``."""
    together = ours.stat().st_size + ref.stat().st_size <= INTERLEAVE_MAX_BYTES
    mine, theirs = [], []
    for i in range(DECODE_ROUNDS):
        ours_first = i % 2 == 0
        if together:
            if ours_first:
                a = _Decoder(ours)
                b = _Decoder(ref)
            else:
                b = _Decoder(ref)
                a = _Decoder(ours)
            m, t = _timed([a, b], vocab, max_seq_len)
        elif ours_first:
            m, t = decode_ms(ours, vocab, max_seq_len), decode_ms(ref, vocab, max_seq_len)
        else:
            t, m = decode_ms(ref, vocab, max_seq_len), decode_ms(ours, vocab, max_seq_len)
        mine.append(m)
        theirs.append(t)
    return statistics.median(mine), statistics.median(theirs)


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
