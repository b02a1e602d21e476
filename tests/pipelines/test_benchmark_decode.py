"""The benchmark's decode comparison: both files loaded afresh each round, their steps
alternating one by one with the same token at the same position (or, too large to hold
together, one file after the other), in the runtime itself."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import weakref

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


def _recording(monkeypatch, loads=None, alive_at_load=None):
    steps = []
    real, real_init = decode._Decoder.step, decode._Decoder.__init__
    alive = weakref.WeakSet()

    def step(self, token, pos):
        steps.append((self.pte.name, pos, int(token)))
        return real(self, token, pos)

    def init(self, pte):
        if loads is not None:
            loads.append(pte.name)
        if alive_at_load is not None:
            alive_at_load.append(len(alive))
        real_init(self, pte)
        alive.add(self)

    monkeypatch.setattr(decode._Decoder, "step", step)
    monkeypatch.setattr(decode._Decoder, "__init__", init)
    return steps


def test_the_steps_alternate_with_the_same_tokens(tiny_ptes, monkeypatch):
    ours, ref = tiny_ptes
    loads, alive_at_load = [], []
    steps = _recording(monkeypatch, loads, alive_at_load)
    monkeypatch.setattr(decode, "DECODE_PAIRS", 1)
    got = decode.decode_pair(ours, ref, vocab=512, max_seq_len=24)
    assert got.ours_ms > 0 and got.ref_ms > 0
    assert len(got.ratios) == 1  # one ratio a pair of rounds
    # both loaded afresh each round, which first alternating
    assert loads == ["tiny.pte", "other.pte", "other.pte", "tiny.pte"]
    # the first round's programs were released before the second round loaded
    assert alive_at_load == [0, 1, 0, 1]
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
    monkeypatch.setattr(decode, "SEPARATE_PAIRS", 1)
    monkeypatch.setattr(decode, "INTERLEAVE_MAX_BYTES", 0)
    got = decode.decode_pair(ours, ref, vocab=512, max_seq_len=24)
    assert got.ours_ms > 0 and got.ref_ms > 0 and len(got.ratios) == 1
    names = [name for name, _pos, _tok in steps]
    # every position below max_seq_len once a round, as when interleaved
    assert names.count("tiny.pte") == names.count("other.pte") == 2 * 24
    assert [pos for _n, pos, _t in steps[:24]] == list(range(24))
    runs = [names[0]] + [b for a, b in itertools.pairwise(names) if a != b]
    assert runs == ["tiny.pte", "other.pte", "tiny.pte"]  # ours, ref; ref, ours


def test_a_pair_of_rounds_cancels_which_file_loaded_first(tiny_ptes, monkeypatch):
    ours, ref = tiny_ptes
    orders = []

    def timed_round(ours, ref, ours_first, vocab, max_seq_len):
        # the file loaded first steps 4% slower; the machine slows down round by round
        orders.append(ours_first)
        slow = 1 + len(orders) / 10
        return [slow * (1.04 if ours_first else 1.0), slow * (1.0 if ours_first else 1.04)]

    monkeypatch.setattr(decode, "_interleaved_round", timed_round)
    monkeypatch.setattr(decode, "DECODE_PAIRS", 3)
    got = decode.decode_pair(ours, ref, vocab=512)
    assert orders == [True, False] * 3
    assert got.ratios == pytest.approx((1.0, 1.0, 1.0))  # 1.04 and 1 / 1.04 in each pair
    assert got.ratio == pytest.approx(1.0)


def test_the_ratio_is_the_median_of_the_pairs_ratios():
    # each ratio comes from files measured together: a slow round slows both
    got = decode.DecodeComparison(2.0, 2.0, (1.0, 2.0, 0.5, 1.1, 0.9))
    assert got.ratio == 1.0
    assert got.interval == (0.5, 2.0)  # five pairs: no rank reaches 95%, the whole range


def test_the_interval_is_the_order_statistics_of_the_median():
    values = [1 + i / 100 for i in range(21)]
    # n = 21: P(Binomial(21, 1/2) <= 5) = 0.013, <= 6: 0.039 -> the 6th and 16th values
    assert decode.median_interval(values[::-1]) == (values[5], values[15])
    assert decode.median_interval(values, confidence=0.5) == (values[8], values[12])
    # ten pairs: P(<= 1) = 0.011, P(<= 2) = 0.055 -> the 2nd and 9th values
    assert decode.median_interval(values[:10]) == (values[1], values[8])


def test_the_table_shows_the_interval():
    from benchmarks.bench_export import _decode

    row = {"decode": 1.012, "decode_interval": [0.981, 1.034]}
    assert _decode(row) == "1.01 (0.98-1.03)"
    assert _decode({"decode": None}) == "-"


def test_the_command_compares_two_files(tiny_ptes):
    ours, ref = tiny_ptes
    cmd = [sys.executable, decode.__file__, str(ours), str(ref), "--vocab", "512"]
    cmd += ["--max-seq-len", "16"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ratio" in done.stdout and "10 pairs of rounds" in done.stdout
    missing = subprocess.run(
        [*cmd[:2], str(ours), str(ours.with_name("nope.pte")), "--vocab", "512"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert missing.returncode == 2 and "nope.pte is not a file" in missing.stderr
    not_a_pte = ours.with_name("not.pte")
    not_a_pte.write_text("not a program")
    bad = subprocess.run(
        [*cmd[:2], str(ours), str(not_a_pte), "--vocab", "512"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "cannot decode with these files" in bad.stderr
    assert "Traceback" not in bad.stderr
