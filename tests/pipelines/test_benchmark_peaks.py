"""The benchmarks' peak RSS of a run is that run's own, not the benchmark process's."""

from __future__ import annotations

import os
import subprocess
import sys

from benchmarks.reference import _wait, measured_popen


def test_a_runs_peak_does_not_inherit_the_benchmarks_high_water_mark(tmp_path):
    # The benchmark process grows (it imports torch and loads each .pte to time decode);
    # a child subprocess starts by vfork, and the kernel records the parent's high-water
    # mark as the child's at exec: every run after the first read at least ~580 MB.
    held = bytearray(400 * 2**20)  # this process now peaks above 400 MB
    held[::4096] = b"x" * len(held[::4096])
    cmd = [sys.executable, "-S", "-c", "pass"]  # ~10 MB of its own

    plain = subprocess.Popen(cmd)
    _, status, usage = os.wait4(plain.pid, 0)
    plain.returncode = os.waitstatus_to_exitcode(status)
    assert usage.ru_maxrss >= 400 * 1024  # KiB: the premise, the parent's mark

    measured = measured_popen(cmd, tmp_path / "run.peak")
    status, usage = _wait(measured, None)
    assert os.waitstatus_to_exitcode(status) == 0 and measured.returncode == 0
    assert usage.ru_maxrss < 100 * 1024  # KiB: its own
    del held


def test_a_failing_run_keeps_its_exit_status(tmp_path):
    measured = measured_popen([sys.executable, "-S", "-c", "raise SystemExit(3)"], tmp_path / "p")
    status, _ = _wait(measured, None)
    assert os.waitstatus_to_exitcode(status) == 3 and measured.returncode == 3
