"""The one error tree of pteflow.

Two families, kept apart because they mean different things to the person
reading them:

* ``UserError``: the input was wrong (an unknown pass, a bad option, a model
  that breaks a pass's precondition, a pipeline that cannot be scheduled).
  The CLI prints one line and exits 2.
* ``InvariantError``: pteflow or a pass is wrong (a pass broke a level
  invariant, or claimed a fact it did not establish). It names the pass.

``PassFailedError`` wraps anything escaping a pass with the pass's name,
position and options; the original is its ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Iterable


class PteflowError(Exception):
    """Base of every error pteflow raises on purpose."""


# --------------------------------------------------------------------------- user errors


class UserError(PteflowError):
    """The input was wrong; the message says what and how to fix it."""


class UnknownNameError(UserError, LookupError):
    """A pass, pipeline, option or backend name that does not exist.

    The message always names the closest known names ("did you mean" when they
    are close, "closest known" otherwise), then every known name when there are
    few, or their number and ``see`` (where to list them) when there are many.
    """

    def __init__(self, kind: str, name: str, known: Iterable[str], *, see: str | None = None):
        self.kind, self.name, self.known = kind, name, sorted(known)
        close = closest(name, self.known)
        if close:
            hint = f"did you mean {', '.join(close)}? "
        else:
            near = closest(name, self.known, cutoff=0.0)
            hint = f"closest known: {', '.join(near)}; " if near else ""
        many = len(self.known) > 12
        listing = f"{len(self.known)} known" if many else ", ".join(self.known) or "(none)"
        if many and see:
            listing += f" ({see})"
        # "known passes: ...", but "known: ..." after a phrase ("option of pass x")
        known_label = "" if many else f"known {_plural(kind)}: " if " " not in kind else "known: "
        super().__init__(f"unknown {kind} {name!r}; {hint}{known_label}{listing}")

    def __str__(self) -> str:  # LookupError would repr() the message otherwise
        return str(self.args[0])


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("s", "x", "sh", "ch")) else "s")


class OptionError(UserError, ValueError):
    """An option value a pass or command refuses."""


class ModelError(UserError, ValueError):
    """The model (or its files) breaks a precondition."""


class PipelineError(UserError):
    """A pipeline that cannot be scheduled or run here."""


class CycleError(PipelineError):
    """The ordering constraints form a cycle."""


class UnsatisfiedError(PipelineError):
    """A pass needs a fact or level that no pass in the pipeline provides."""


class ConflictError(PipelineError):
    """Two constraints that cannot both hold (e.g. two passes that must be last)."""


class UnavailableError(PipelineError):
    """A pass cannot run on this machine (missing SDK, package or OS)."""


# --------------------------------------------------------------------------- our bugs


class InvariantError(PteflowError, AssertionError):
    """A level invariant or a claimed fact does not hold on the real graph."""

    def __init__(self, message: str, *, pass_name: str | None = None):
        self.pass_name = pass_name
        prefix = f"pass {pass_name!r} broke an invariant: " if pass_name else ""
        super().__init__(prefix + message)


class FactError(InvariantError):
    """A pass claimed a fact that its output does not satisfy."""


class PassFailedError(PteflowError, RuntimeError):
    """Something escaped a pass; carries the pass's name, position and options."""

    def __init__(
        self,
        pass_name: str,
        position: int,
        options: str,
        cause: BaseException,
        step: tuple[int, int] | None = None,
    ):
        """``position``: the pass's index in the pipeline as listed; ``step``: its place in
        the schedule (1-based, of how many), as the run's progress lines number it."""
        self.pass_name, self.position, self.options = pass_name, position, options
        what = f"{type(cause).__name__}: {cause}".strip().splitlines()
        first = what[0] if what else type(cause).__name__
        where = f"pass {step[0]}/{step[1]}" if step else f"pass #{position}"
        super().__init__(f"{where} {pass_name}{options} failed: {first}")

    @property
    def is_user_error(self) -> bool:
        return isinstance(self.__cause__, UserError)


def closest(name: str, known: Iterable[str], n: int = 3, *, cutoff: float = 0.5) -> list[str]:
    """The known names most like ``name`` (difflib), best first; ``cutoff=0`` always
    returns the ``n`` nearest, however far."""
    import difflib

    return difflib.get_close_matches(name, list(known), n=n, cutoff=cutoff)


def describe(e: BaseException) -> str:
    """One line for an exception raised by the user's code: ``Type: first line``
    (``it called sys.exit(N)`` for SystemExit)."""
    if isinstance(e, SystemExit):
        return f"it called sys.exit({e.code!r})"
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
