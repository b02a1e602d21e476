"""The benchmark's decode comparison: both files loaded afresh each round, their steps
alternating one by one with the same token at the same position (or, too large to hold
together, one file after the other), in the runtime itself."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys

import pytest

from benchmarks import decode


@pytest.fixture(scope="module")
def tiny_ptes(tmp_path_factory):
    out = tmp_path_factory.mktemp("decode")
    pte = out / "tiny.pte"
    cmd = [sys.executable, "-m", "pteflow.driver", "run", "--pipeline", "xnnpack_default"]
    cmd += ["-o", str(pte), "--no-cache", "--no-verify"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    other = out / "other.pte"
    shutil.copy(pte, other)
    return pte, other


def _recording(monkeypatch, loads=None):
    steps = []
    real, real_init = decode._Decoder.step, decode._Decoder.__init__

    def step(self, token, pos):
        steps.append((self.pte.name, pos, int(token)))
        return real(self, token, pos)

    def init(self, pte):
        if loads is not None:
            loads.append(pte.name)
        real_init(self, pte)

    monkeypatch.setattr(decode._Decoder, "step", step)
    monkeypatch.setattr(decode._Decoder, "__init__", init)
    return steps


def test_the_steps_alternate_with_the_same_tokens(tiny_ptes, monkeypatch):
    ours, ref = tiny_ptes
    loads = []
    steps = _recording(monkeypatch, loads)
    monkeypatch.setattr(decode, "DECODE_ROUNDS", 2)
    mine, theirs = decode.decode_pair_ms(ours, ref, vocab=512, max_seq_len=24)
    assert mine > 0 and theirs > 0
    # both loaded afresh each round, which first alternating
    assert loads == ["tiny.pte", "other.pte", "other.pte", "tiny.pte"]
    assert len(steps) == 2 * 2 * 24  # two rounds, both files, every position once
    first = steps[: 2 * 24]
    pairs = [first[i : i + 2] for i in range(0, len(first), 2)]
    for pos, (a, b) in enumerate(pairs):  # the same step for both, one after the other
        assert a[1] == b[1] == pos and a[2] == b[2]
        assert {a[0], b[0]} == {"tiny.pte", "other.pte"}
    # which file goes first alternates step by step
    assert [a[0] for a, _b in pairs[:4]] == ["tiny.pte", "other.pte"] * 2


def test_files_too_large_to_hold_together_run_one_after_the_other(tiny_ptes, monkeypatch):
    ours, ref = tiny_ptes
    steps = _recording(monkeypatch)
    monkeypatch.setattr(decode, "DECODE_ROUNDS", 2)
    monkeypatch.setattr(decode, "INTERLEAVE_MAX_BYTES", 0)
    mine, theirs = decode.decode_pair_ms(ours, ref, vocab=512, max_seq_len=24)
    assert mine > 0 and theirs > 0
    names = [name for name, _pos, _tok in steps]
    # every position below max_seq_len once a round, as when interleaved
    assert names.count("tiny.pte") == names.count("other.pte") == 2 * 24
    assert [pos for _n, pos, _t in steps[:24]] == list(range(24))
    runs = [names[0]] + [b for a, b in itertools.pairwise(names) if a != b]
    assert runs == ["tiny.pte", "other.pte", "tiny.pte"]  # ours, ref; ref, ours
