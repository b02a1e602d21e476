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


def decode_ms(pte: Path, vocab: int, steps: int = 32) -> float:
    """Median wall time (ms) of one single-token decode step of ``pte`` alone."""
    decoder = _Decoder(pte)
    times = [decoder.step(tok, pos) for pos, tok in enumerate(_tokens(vocab, steps))]
    return statistics.median(times[4:]) * 1000  # the first steps warm caches up


def decode_pair_ms(
    ours: Path, ref: Path, vocab: int, max_seq_len: int = 128
) -> tuple[float, float]:
    """``(ours, reference)``: each file's median ms per decode step over ``DECODE_ROUNDS``
    rounds, each round loading both afresh (module doc); positions stay below
    ``max_seq_len``."""
    together = ours.stat().st_size + ref.stat().st_size <= INTERLEAVE_MAX_BYTES
    mine, theirs = [], []
    for i in range(DECODE_ROUNDS):
        if together:
            a, b = _interleaved(ours, ref, vocab, max_seq_len, ours_first=i % 2 == 0)
        elif i % 2 == 0:
            a, b = decode_ms(ours, vocab), decode_ms(ref, vocab)
        else:
            b, a = decode_ms(ref, vocab), decode_ms(ours, vocab)
        mine.append(a)
        theirs.append(b)
    return statistics.median(mine), statistics.median(theirs)


def _interleaved(
    ours: Path, ref: Path, vocab: int, max_seq_len: int, ours_first: bool
) -> tuple[float, float]:
    """Both loaded (in the round's order), their steps alternating one by one."""
    if ours_first:
        a = _Decoder(ours)
        b = _Decoder(ref)
    else:
        b = _Decoder(ref)
        a = _Decoder(ours)
    steps = min(WARMUP_STEPS + MEASURED_STEPS, max_seq_len)
    mine, theirs = [], []
    for pos, tok in enumerate(_tokens(vocab, steps)):
        if pos % 2 == 0:
            t_a, t_b = a.step(tok, pos), b.step(tok, pos)
        else:
            t_b, t_a = b.step(tok, pos), a.step(tok, pos)
        if pos >= min(WARMUP_STEPS, steps // 4):
            mine.append(t_a)
            theirs.append(t_b)
    return statistics.median(mine) * 1000, statistics.median(theirs) * 1000
