"""Reproducers: a failing run writes one, ``driver repro`` replays it to the same error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ._helpers import MODELS, WRONG, run


def failing_run(capsys, tmp_path: Path, passes: str, *extra: str) -> Path:
    code, _out, err = run(
        capsys,
        "run",
        "--model",
        f"{MODELS}:mlp",
        "--plugin",
        WRONG,
        "--passes",
        passes,
        "--repro-dir",
        str(tmp_path / "repro"),
        *extra,
    )
    assert code == 1, err
    hint = [ln for ln in err.splitlines() if "driver repro " in ln]
    assert len(hint) == 1, err
    return Path(hint[0].split("driver repro ", 1)[1].strip())


def test_a_raising_pass_leaves_a_reproducer_that_replays(capsys, tmp_path):
    where = failing_run(capsys, tmp_path, "export,noop-aten,raises-at-aten{message=bad}")
    assert where == tmp_path / "repro" / "003-raises-at-aten"
    info = json.loads((where / "repro.json").read_text())
    assert info["pass"] == {"name": "raises-at-aten", "options": {"message": "bad"}}
    assert [p["name"] for p in info["replay"]] == ["noop-aten"]
    assert info["level"] == "aten" and info["versions"]["torch"].startswith("2.")
    assert "ValueError: bad" in info["error"]["traceback"]
    assert (where / "program" / "forward.pt2").is_file()

    code, out, _err = run(capsys, "repro", str(where))
    assert code == 1
    assert "reproduced in" in out
    assert "PassFailedError in raises-at-aten: ValueError: bad" in out


def test_an_invariant_break_reproduces(capsys, tmp_path):
    where = failing_run(capsys, tmp_path, "export,flip-sign{lie=true}", "--checks", "each")
    code, out, _err = run(capsys, "repro", str(where))
    assert code == 1 and "reproduced" in out and "reported modified=False" in out


def test_a_fixed_pass_no_longer_reproduces(capsys, tmp_path):
    where = failing_run(capsys, tmp_path, "export,raises-at-aten")
    info = json.loads((where / "repro.json").read_text())
    info["pass"] = {"name": "noop-aten", "options": {}}
    (where / "repro.json").write_text(json.dumps(info))
    # an edited reproducer no longer authenticates: replaying it takes --trust
    code, _out, err = run(capsys, "repro", str(where))
    assert code == 2 and "fails authentication" in err and "--trust" in err
    code, out, _err = run(capsys, "repro", "--trust", str(where))
    assert code == 0 and "did not reproduce" in out


def test_not_a_reproducer_is_one_line(capsys, tmp_path):
    code, _out, err = run(capsys, "repro", str(tmp_path))
    assert code == 2 and "not a reproducer directory" in err


@pytest.mark.slow
def test_an_edge_failure_replays_from_the_aten_input(capsys, tmp_path):
    where = failing_run(capsys, tmp_path, "export,to-edge,raises-at-edge")
    info = json.loads((where / "repro.json").read_text())
    assert [p["name"] for p in info["replay"]] == ["to-edge"]
    code, out, _err = run(capsys, "repro", str(where))
    assert code == 1 and "PassFailedError in raises-at-edge: ValueError: boom at edge" in out


def test_a_reproducer_from_elsewhere_is_refused_without_trust(capsys, tmp_path, monkeypatch):
    where = failing_run(capsys, tmp_path, "export,raises-at-aten")
    # another user's key (or another machine's): the directory does not authenticate
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "someone-else"))
    code, out, err = run(capsys, "repro", str(where))
    assert code == 2 and "replaying" not in out
    assert len(err.strip().splitlines()) == 1 and "fails authentication" in err, err
    assert "--trust" in err
    code, out, _err = run(capsys, "repro", "--trust", str(where))
    assert code == 1 and "reproduced in" in out
    # a directory with no signature at all (an older pteflow's, or hand-made)
    (where / "repro.sig").unlink()
    code, _out, err = run(capsys, "repro", str(where))
    assert code == 2 and "has no valid signature" in err
