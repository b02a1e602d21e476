"""The final program is let go of before ExecuTorch's runtime loads the ``.pte``
(``keep_program=False``, as ``driver run`` does): loading is an fp32 run's peak, and the
program holds every delegate payload until released. The file is still written whole or
not at all, and a runtime failure is still emit's."""

from __future__ import annotations

import signal
import sys
import weakref

import pytest

import pteflow
from pteflow.ir.errors import PassFailedError
from pteflow.passes.emit.emit import EmitPass

from ._helpers import MODELS, WRONG, ctrl_c_at_marker

PASSES = "export,to-edge,partition-xnnpack,to-executorch,emit"


def _watch_the_load(monkeypatch) -> list[bool]:
    """Whether emit's input program (its ExecuTorch manager) was alive each time the
    runtime was asked to load a written ``.pte``."""
    import pteflow.ir.runnable as runnable

    refs: list[weakref.ref] = []
    seen: list[bool] = []
    run, smoke_run = EmitPass.run, runnable.smoke_run

    def emit_run(self, program, ctx):
        refs.append(weakref.ref(program.artifact))
        return run(self, program, ctx)

    def watched_smoke_run(*args, **kwargs):
        seen.append(refs[-1]() is not None)
        return smoke_run(*args, **kwargs)

    monkeypatch.setattr(EmitPass, "run", emit_run)
    monkeypatch.setattr(runnable, "smoke_run", watched_smoke_run)
    return seen


@pytest.mark.parametrize("cache", [False, True], ids=["no-cache", "cache"])
def test_the_program_is_released_before_the_runtime_loads_the_pte(tmp_path, monkeypatch, cache):
    seen = _watch_the_load(monkeypatch)
    out = tmp_path / "m.pte"
    caching = pteflow.CacheOptions(directory=str(tmp_path / "c")) if cache else False
    result = pteflow.compile(
        f"{MODELS}:mlp", passes=PASSES, output=out, cache=caching, keep_program=False
    )
    assert seen == [False]  # the manager (and its payloads) was gone when the runtime loaded
    assert result.program is None and result.ok and result.verification.ok
    assert out.exists() and result.report["constants"] is not None
    assert result.report["arbitration"] is not None  # read from the program before release
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_the_api_keeps_the_program_unless_asked(tmp_path, monkeypatch):
    seen = _watch_the_load(monkeypatch)
    result = pteflow.compile(f"{MODELS}:mlp", passes=PASSES, output=tmp_path / "m.pte", cache=False)
    assert seen == [True]  # loaded inside emit, with the program alive: the old order
    assert result.program is not None and result.program.level.name == "EXECUTORCH"


@pytest.mark.parametrize("keep", [True, False], ids=["kept", "released"])
def test_a_pte_the_runtime_rejects_is_emits_failure_and_nothing_is_written(tmp_path, keep):
    out = tmp_path / "m.pte"
    with pytest.raises(PassFailedError) as e:
        pteflow.compile(
            f"{MODELS}:mlp",
            passes="export,to-edge,to-executorch,integer-inputs,emit",
            plugins=[WRONG],
            output=out,
            verify=False,
            cache=False,
            keep_program=keep,
            debug=pteflow.DebugOptions(repro_dir=str(tmp_path / "repro")),
        )
    assert e.value.pass_name == "emit"
    assert str(e.value).startswith("pass 5/5 emit{path=")
    assert "ExecuTorch's runtime cannot execute method 'forward'" in str(e.value)
    assert not out.exists() and not list(tmp_path.glob(".m.pte.*"))
    assert (tmp_path / "repro" / "005-emit").is_dir()  # the reproducer, as for any pass


SCRIPT = """
import sys, time
from pathlib import Path
import pteflow.ir.runnable as runnable

marker = Path(sys.argv[1])
real = runnable.smoke_run

def stopped_in_the_load(*args, **kwargs):
    marker.write_text("STOPPED_IN_LOAD")
    time.sleep(60)
    return real(*args, **kwargs)

runnable.smoke_run = stopped_in_the_load
sys.argv[1:] = sys.argv[2:]
from pteflow.driver.cli import entry
entry()  # as the driver command starts: SIGTERM handled too
"""


@pytest.mark.parametrize(
    ("sig", "expected"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"]
)
def test_a_signal_while_the_runtime_loads_the_released_pte_leaves_nothing(tmp_path, sig, expected):
    script = tmp_path / "stop_in_load.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    pte = out / "m.pte"
    cmd = [sys.executable, str(script), str(tmp_path / "marker"), "run", "--model"]
    cmd += [f"{MODELS}:mlp", "--passes", PASSES, "-o", str(pte), "--no-cache"]
    never = "emit never loaded"
    code = ctrl_c_at_marker(cmd, tmp_path / "marker", timeout=300, never=never, sig=sig)
    assert code == expected, (tmp_path / "marker.out").read_text()
    assert not pte.exists()
    assert [p.name for p in out.iterdir() if p.suffix in (".tmp", ".pte")] == []


def test_the_cli_releases_the_program(tmp_path):
    """``driver run`` asks for the release (the option the API leaves off)."""
    from pteflow.driver.cli import parser
    from pteflow.driver.cli.run import options

    argv = ["run", "--pipeline", "xnnpack_default", "-o", str(tmp_path / "m.pte")]
    assert options(parser().parse_args(argv)).keep_program is False


def test_verbose_says_where_the_load_went_and_the_default_stays_short(tmp_path, capsys):
    from ._helpers import run

    argv = ["run", "--model", f"{MODELS}:mlp", "--passes", PASSES, "--no-cache"]
    code, out, _ = run(capsys, *argv, "-o", str(tmp_path / "v.pte"), "-v")
    assert code == 0, out
    assert "emit: checked in the runtime after the release (" in out
    code, out, _ = run(capsys, *argv, "-o", str(tmp_path / "q.pte"))
    assert code == 0, out
    assert "after the release" not in out  # the README's first command stays <= 16 lines
    assert (tmp_path / "v.pte").exists() and (tmp_path / "q.pte").exists()


def test_no_checkpoint_page_is_resident_when_the_runtime_loads(tmp_path, monkeypatch):
    """Reading what the report keeps (the constants' names: every weight hashed, the
    delegates' too) pages the memory-mapped checkpoint in again after the passes; at
    135M's shapes the whole file stayed resident through the load, the run's peak."""
    import pteflow.ir.runnable as runnable
    from pteflow.testing import write_random_checkpoint

    from ..mapped_files import resident_kb

    tiny = {"dim": 256, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 2048}
    params, checkpoint = write_random_checkpoint(tmp_path / "model", **tiny)
    seen: list[int] = []
    smoke_run = runnable.smoke_run

    def watched_smoke_run(*args, **kwargs):
        seen.append(resident_kb(checkpoint))
        return smoke_run(*args, **kwargs)

    monkeypatch.setattr(runnable, "smoke_run", watched_smoke_run)
    result = pteflow.compile(
        params=str(params),
        checkpoint=str(checkpoint),
        passes="export,to-edge,partition-xnnpack,to-executorch,emit",
        output=tmp_path / "m.pte",
        verify=False,
        cache=False,
        keep_program=False,
    )
    assert result.ok and result.report["constants"]  # the weights were hashed and named
    assert checkpoint.stat().st_size > 8 * 2**20
    assert len(seen) == 1 and seen[0] < 1024  # kB; 8 MB were read after the passes
