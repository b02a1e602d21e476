"""What the driver tests share: the model and plugin files, running ``driver`` in-process,
and interrupting a child run at a chosen point."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from pteflow.driver.cli import main

MODELS = str(Path(__file__).parents[1] / "models.py")  # --model MODELS:mlp


def ctrl_c_works() -> None:
    """``preexec_fn`` of a child a test interrupts with SIGINT: a shell starts background
    jobs with SIGINT ignored (CI launched with ``&``), and a Python started so never raises
    KeyboardInterrupt; the default disposition makes the child a user's foreground run."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ctrl_c_at_marker(
    cmd: Sequence[str],
    marker: Path,
    *,
    timeout: float,
    never: str,
    sig: signal.Signals = signal.SIGINT,
) -> int:
    """Run ``cmd``, press Ctrl-C (SIGINT, or send ``sig``) once it has created ``marker``
    (the child marks the point to interrupt, so the signal lands there, not at a guess);
    its exit code.
    The child's output goes to ``marker`` + ``.out`` (a pipe nobody reads could fill and
    stall it); an assertion says ``never`` if the marker does not appear in ``timeout`` s."""
    out = marker.with_name(marker.name + ".out")
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            list(cmd), stdout=sink, stderr=subprocess.STDOUT, preexec_fn=ctrl_c_works
        )
    try:
        deadline = time.monotonic() + timeout
        while not marker.exists():
            assert proc.poll() is None, out.read_text(errors="replace")
            assert time.monotonic() < deadline, never
            time.sleep(0.1)
        proc.send_signal(sig)
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


WRONG = str(Path(__file__).with_name("wrong_passes.py"))  # --plugin: deliberately wrong passes


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """``driver ARGV`` in this process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
