"""A Ctrl-C that upstream code swallowed still stops the run (ir/interrupts.py): no
`.pte`, no cache entry of the pass it landed in, exit 130, and a hung wait for the cache
writer is impossible (the CI failure this came from: the run went on to wait for a writer
the test had stopped)."""

from __future__ import annotations

import signal

import pytest

from pteflow.ir import interrupts

from ._helpers import MODELS, WRONG, run

PASSES = "export,swallows-ctrl-c{then=%s},to-edge,to-executorch,emit"


@pytest.fixture(autouse=True)
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt, as in a terminal, whatever the test runner's
    disposition (a runner started in the background ignores SIGINT)."""
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, saved)


@pytest.mark.parametrize("then", ["return", "import-error"])
def test_a_swallowed_ctrl_c_ends_the_run_as_interrupted(capsys, tmp_path, then):
    pte, cache = tmp_path / "a.pte", tmp_path / "cache"
    args = ["run", "--model", f"{MODELS}:mlp", "--plugin", WRONG, "--passes", PASSES % then]
    args += ["-o", str(pte), "--cache-dir", str(cache), "--no-verify"]
    code, out, err = run(capsys, *args)
    assert code == 130, (out, err)
    assert "driver: interrupted" in err
    assert "Traceback" not in err and "initialization failed" not in err
    assert "to-edge" not in out  # no pass ran after it
    assert not pte.exists()
    # only export's entry can be visible: the swallowing pass's result was not stored
    entries = list((cache / "entries").glob("*/*.entry")) if cache.exists() else []
    assert len(entries) <= 1, entries
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    interrupts.check()  # and forgotten: nothing pending once the command returned


def test_outside_the_driver_nothing_is_recorded():
    """An API caller's handlers are its own: without `noticed()` a signal is not recorded."""
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
    assert not interrupts.requested()
    interrupts.check()
