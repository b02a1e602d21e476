"""A clean console: upstream warnings and C++ stderr go to the run log, counted per stage."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from pteflow.driver.console import RunConsole

#: upstream text seen on a clean machine before issue 16 (torchao, torch, the runtime)
NOISE = ("FutureWarning", "[cpuinfo", "Failed to load", "LeafSpec")


def _c_level_write(text: str) -> None:
    os.write(2, text.encode())  # what a C++ library does: straight to fd 2


def test_fd2_and_python_warnings_go_to_the_log_counted_per_stage(tmp_path, capfd):
    log = tmp_path / "m.log"
    with RunConsole(lambda _: None) as console:
        console.start(log)
        console.stage("a", "[1/2] first")
        _c_level_write("[cpuinfo_utils.cpp:71] one\n[cpuinfo_utils.cpp:87] two\n")
        warnings.warn("upstream says so", UserWarning, stacklevel=1)
        console.stage("b", "[2/2] second")
        print("noise via sys.stderr", file=sys.__stderr__)  # a logging handler's stream
        console.end_stage()
    _c_level_write("after the run\n")
    _, err = capfd.readouterr()
    assert "cpuinfo" not in err and "upstream says so" not in err and "noise" not in err
    assert "after the run" in err  # fd 2 is the real stderr again
    text = log.read_text()
    assert "==== [1/2] first ====" in text and "[cpuinfo_utils.cpp:87] two" in text
    assert "UserWarning: upstream says so" in text and "noise via sys.stderr" in text
    # a Python warning counts once (its source line is not a second message)
    assert console.stage_counts() == [("a", "[1/2] first", 3), ("b", "[2/2] second", 1)]


def test_stderr_is_restored_when_interrupted(tmp_path, capfd):
    with pytest.raises(KeyboardInterrupt), RunConsole(lambda _: None) as console:
        console.start(tmp_path / "m.log")
        console.stage("a", "a")
        raise KeyboardInterrupt
    _c_level_write("visible\n")
    assert "visible" in capfd.readouterr().err
    assert warnings.showwarning is not console._showwarning


def test_a_log_path_that_cannot_be_written_is_refused_before_work(tmp_path, capsys):
    from ._helpers import MODELS, run

    (tmp_path / "m.log").mkdir()
    passes = "export,to-edge,to-executorch,emit"
    pte = str(tmp_path / "m.pte")
    code, out, err = run(capsys, "run", "--model", f"{MODELS}:mlp", "--passes", passes, "-o", pte)
    assert code == 2 and "cannot write the run log" in err and "Is a directory" in err
    assert "model:" not in out and sorted(p.name for p in tmp_path.iterdir()) == ["m.log"]


def test_output_redirected_to_the_run_log_name_is_kept(tmp_path):
    """``driver run -o m.pte > m.log 2>&1``: the run log must not be renamed over the file
    the shell writes the driver's output to; it goes to m.upstream.log instead."""
    from ._helpers import MODELS

    passes = "export,to-edge,to-executorch,emit"
    cmd = [sys.executable, "-m", "pteflow.driver", "run", "--model", f"{MODELS}:mlp",
           "--passes", passes, "-o", "m.pte", "--no-cache"]  # fmt: skip
    with open(tmp_path / "m.log", "wb") as out:
        done = subprocess.run(cmd, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    assert done.returncode == 0
    shown = (tmp_path / "m.log").read_text()
    assert "wrote m.pte" in shown and "upstream warnings in m.upstream.log" in shown
    assert "==== " in (tmp_path / "m.upstream.log").read_text()  # the stages' noise
    assert json.loads((tmp_path / "m.report.json").read_text())["log"] == "m.upstream.log"


def test_own_warnings_reach_the_console_while_capturing(tmp_path, capfd):
    seen = []
    with RunConsole(seen.append) as console:
        console.start(tmp_path / "m.log")
        console.pass_started(1, "[1/1] p")
        console.wrap_warn(lambda t: _c_level_write(f"driver: warning: {t}\n"))("cache dropped")
    err = capfd.readouterr().err
    assert "driver: warning: cache dropped" in err
    assert seen == ["\n"]  # the open progress line was ended first, not written into


@pytest.mark.slow
def test_readme_first_command_prints_no_upstream_noise(tmp_path):
    """The README's first command (driver run --pipeline xnnpack_default -o llama.pte), as
    a user's shell runs it: at most 17 lines (the issue's ~15: progress, summary,
    verification and its progress line, metadata, where the files are), each one of
    pteflow's own, no upstream warning text, all of it in the log."""
    driver = Path(sys.executable).with_name("driver")
    env = {**os.environ, "PYTHONWARNINGS": ""}
    cmd = [str(driver), "run", "--pipeline", "xnnpack_default", "-o", "llama.pte"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    console = done.stdout + done.stderr
    assert len(console.splitlines()) <= 17, console
    ours = ("model: ", "[", "total ", "wrote ", "verifying ", "verify: ", "arbitration ")
    ours += ("metadata: ", "report: ")
    assert all(ln.startswith(ours) for ln in console.splitlines()), console
    for text in NOISE:
        assert text not in console, text
    log = (tmp_path / "llama.log").read_text()
    for text in ("FutureWarning", "[cpuinfo", "LeafSpec"):
        assert text in log, text
    report = json.loads((tmp_path / "llama.report.json").read_text())
    assert report["log"] == "llama.log"
    counts = {p["name"]: p["upstream_warnings"] for p in report["passes"]}
    assert counts["export"] > 0 and counts["emit"] > 0  # the runtime's cpuinfo lines
    assert sum(report["upstream_warnings"].values()) >= sum(counts.values())
    assert "upstream warnings in llama.log" in done.stdout
    # verification has its progress line, as a pass has (at 1B it takes minutes)
    lines = done.stdout.splitlines()
    verifying = [i for i, ln in enumerate(lines) if ln.startswith("verifying the .pte")]
    assert len(verifying) == 1, done.stdout
    assert re.fullmatch(
        r"verifying the \.pte against its reference \.\.\. \d+\.\d\ds", lines[verifying[0]]
    )
    assert verifying[0] < next(i for i, ln in enumerate(lines) if ln.startswith("verify:"))

    # --no-cache: the same run again would be a full hit, where no pass (and no emit) runs
    verbose = subprocess.run(
        [*cmd, "-v", "--no-cache"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert verbose.returncode == 0, verbose.stderr
    assert "[cpuinfo" in verbose.stderr  # -v shows them live (emit's smoke run)
    assert "ops before" in verbose.stdout  # and the per-pass table
    quiet = subprocess.run([*cmd, "-q"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stderr == ""  # a full hit, as quiet as a run
    assert [ln.split()[0] for ln in quiet.stdout.splitlines()] == ["wrote", "verify:"]


def test_a_long_pass_shows_it_is_alive_on_a_terminal(tmp_path, monkeypatch):
    import time

    from pteflow.driver import console as console_module

    monkeypatch.setattr(console_module, "ALIVE_AFTER_S", 0.2)
    written: list[str] = []
    with RunConsole(written.append, live=True) as console:
        console.start(tmp_path / "m.log")
        console.pass_started(1, "[1/1] slow")
        time.sleep(1.0)
        console.end_stage()
        ticks = len(written)
        time.sleep(0.6)
    assert ticks > 0 and len(written) == ticks  # ticking stops when the pass ends
    text = written[0]
    # the elapsed time, then as many backspaces: the final " 1.23s" overwrites it
    shown = text.rstrip("\b")
    assert shown.startswith(" ") and shown.endswith("s") and len(text) == 2 * len(shown)
