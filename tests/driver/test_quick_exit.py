"""The driver leaves without tearing the interpreter down, and still runs what exit must."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).with_name("exit_probe.py")


def _driver(args: list[str], probe: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "EXIT_PROBE": str(probe)}
    cmd = [sys.executable, "-m", "pteflow.driver", *args, "--plugin", str(PROBE)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_atexit_callbacks_run_and_module_teardown_is_skipped(tmp_path):
    probe = tmp_path / "probe.txt"
    done = _driver(["plan", "--passes", "export,exit-probe"], probe)
    assert done.returncode == 0, done.stderr
    assert "exit-probe" in done.stdout  # the plan was printed, whole
    assert probe.read_text().split() == ["atexit"]


def test_the_exit_code_of_a_refusal_survives(tmp_path):
    probe = tmp_path / "probe.txt"
    done = _driver(["plan", "--passes", "export,exit-probe,no-such-pass"], probe)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no-such-pass" in done.stderr
    assert probe.read_text().split() == ["atexit"]
