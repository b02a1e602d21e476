"""Observers see every pass; 'each' mode catches a pass that lies about modified."""

from __future__ import annotations

from typing import ClassVar

import attrs
import pytest

from pteflow.ir import Level, Program
from pteflow.ir.errors import InvariantError, PassFailedError
from pteflow.passes import Pass, PassContext, PassInfo, PassManager, PassResult
from pteflow.passes.manager import PassObserver

from ..fakes import RaisesPass, ReluToSigmoidPass


@attrs.frozen
class SilentReluToSigmoidPass(Pass):
    """Rewrite relu to sigmoid but report modified=False (a lying pass)."""

    info: ClassVar[PassInfo] = PassInfo(name="silent-rewrite", level_in=Level.ATEN)

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        ReluToSigmoidPass().run(program, ctx)
        return PassResult(program, False)


class Log(PassObserver):
    def __init__(self) -> None:
        self.events: list[tuple[str, int, str]] = []

    def before(self, rank, pass_, program_in):
        self.events.append(("before", rank, pass_.name))

    def after(self, rank, pass_, program_out, record):
        self.events.append(("after", rank, record.name))

    def failed(self, rank, pass_, error):
        self.events.append(("failed", rank, type(error).__name__))


def test_observers_see_every_pass_in_run_order(aten_mlp):
    log = Log()
    PassManager([ReluToSigmoidPass(), ReluToSigmoidPass()]).run(aten_mlp, observers=[log])
    assert log.events == [
        ("before", 0, "relu-to-sigmoid"),
        ("after", 0, "relu-to-sigmoid"),
        ("before", 1, "relu-to-sigmoid"),
        ("after", 1, "relu-to-sigmoid"),
    ]


def test_observers_hear_of_a_failure_before_it_propagates(aten_mlp):
    log = Log()
    with pytest.raises(PassFailedError):
        PassManager([ReluToSigmoidPass(), RaisesPass()]).run(aten_mlp, observers=[log])
    assert log.events[-1] == ("failed", 1, "PassFailedError")


def test_each_mode_names_a_pass_that_lied_about_modified(aten_mlp):
    with pytest.raises(InvariantError, match="silent-rewrite.*reported modified=False") as info:
        PassManager([SilentReluToSigmoidPass()], verify="each").run(aten_mlp)
    assert info.value.pass_name == "silent-rewrite"


def test_honest_unchanged_passes_pass_the_check(aten_mlp):
    result = PassManager([ReluToSigmoidPass(), ReluToSigmoidPass()], verify="each").run(aten_mlp)
    assert [r.modified for r in result.records] == [True, False]


def test_boundaries_mode_does_not_hash(aten_mlp):
    PassManager([SilentReluToSigmoidPass()], verify="boundaries").run(aten_mlp)


@attrs.frozen
class TalksPass(Pass):
    """Says two things through ctx.log."""

    info: ClassVar[PassInfo] = PassInfo(name="talks", level_in=Level.ATEN)

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        ctx.log("one")
        ctx.log("two")
        return PassResult(program, False)


class Hears(PassObserver):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def started(self, rank, pass_):
        self.events.append(("started", rank, pass_.name))

    def log(self, rank, pass_, message):
        self.events.append(("log", rank, message))

    def finished(self, rank, pass_, record):
        self.events.append(("finished", rank, record.log))


def test_one_observer_mechanism_hears_starts_logs_and_records(aten_mlp):
    hears = Hears()
    result = PassManager([TalksPass(), ReluToSigmoidPass()]).run(aten_mlp, observers=[hears])
    assert hears.events == [
        ("started", 0, "talks"),
        ("log", 0, "one"),
        ("log", 0, "two"),
        ("finished", 0, ("one", "two")),
        ("started", 1, "relu-to-sigmoid"),
        ("finished", 1, ()),
    ]
    assert list(result.records[0].to_json()["log"]) == ["one", "two"]
    import inspect

    assert "on_event" not in inspect.signature(PassManager.run).parameters
