"""A --plugin module that records how the process ends (tests/driver/test_quick_exit.py).

It writes ``atexit`` to ``$EXIT_PROBE`` from an atexit callback and ``teardown`` from the
finalizer of a module global (run only when the interpreter tears its modules down).
"""

from __future__ import annotations

import atexit
import os
from typing import ClassVar

import attrs

from pteflow.ir import Level, Program
from pteflow.passes import Pass, PassContext, PassInfo, PassResult

_PROBE = os.environ.get("EXIT_PROBE", "")


def _say(word: str, _open=open) -> None:  # builtins may be gone at teardown
    if _PROBE:
        with _open(_PROBE, "a") as f:
            f.write(word + "\n")


class _Global:
    def __del__(self, _say=_say) -> None:
        _say("teardown")


KEPT = _Global()
atexit.register(_say, "atexit")


@attrs.frozen
class ExitProbePass(Pass):
    """Change nothing (the module is what is probed)."""

    info: ClassVar[PassInfo] = PassInfo(name="exit-probe", level_in=Level.ATEN)

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        return PassResult(program, False)
