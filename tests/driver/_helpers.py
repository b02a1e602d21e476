"""What the driver tests share: the model and plugin files, and running ``driver`` in-process."""

from __future__ import annotations

import signal
from pathlib import Path

from pteflow.driver.cli import main

MODELS = str(Path(__file__).parents[1] / "models.py")  # --model MODELS:mlp


def ctrl_c_works() -> None:
    """``preexec_fn`` of a child a test interrupts with SIGINT: a shell starts background
    jobs with SIGINT ignored (CI launched with ``&``), and a Python started so never raises
    KeyboardInterrupt; the default disposition makes the child a user's foreground run."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


WRONG = str(Path(__file__).with_name("wrong_passes.py"))  # --plugin: deliberately wrong passes


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """``driver ARGV`` in this process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
