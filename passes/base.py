"""The Pass contract.

A pass is an ``@attrs.frozen`` class. Its options are attrs fields (with
validators); its contract is class data, a ``PassInfo`` in ``info``:

    level_in / level_out     the levels it reads and writes
    requires / provides / invalidates   facts (``pteflow.ir.Fact``)
    after / before           ordering against other pass classes
    ordered                  keep the listed order among ordered passes
                             (partitioners: the earlier one gets first pick)
    last                     must be the last pass (emit)

Policies that are not scheduling (the pass cache, ``--no-delegate``) are not part of
it: a pass opts in through the mixins of ``pteflow.passes.policy`` (``Uncacheable``,
``Delegating``).

``run(program, ctx)`` does the work and returns a ``PassResult``. Callers use
``apply``, which checks the input level and required facts, runs the pass,
checks the output's level and graph lint, and updates the program's facts
from the contract so no pass can forget.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import attrs

from pteflow.ir import Fact, Level, Program
from pteflow.ir.errors import InvariantError, OptionError, PipelineError

_KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def _classes(value: Iterable[type[Pass]]) -> tuple[type[Pass], ...]:
    return tuple(value)


def _facts(value: Iterable[Fact]) -> frozenset[Fact]:
    out = frozenset(value)
    for f in out:
        if not isinstance(f, Fact):
            raise TypeError(f"facts must be pteflow.ir.Fact objects, got {f!r}")
    return out


@attrs.frozen
class PassInfo:
    """The contract of a pass class."""

    name: str = attrs.field()
    level_in: Level
    level_out: Level = attrs.field(default=None)  # default: level_in (set in __attrs_post_init__)
    requires: frozenset[Fact] = attrs.field(factory=frozenset, converter=_facts)
    provides: frozenset[Fact] = attrs.field(factory=frozenset, converter=_facts)
    invalidates: frozenset[Fact] = attrs.field(factory=frozenset, converter=_facts)
    after: tuple[type[Pass], ...] = attrs.field(factory=tuple, converter=_classes)
    before: tuple[type[Pass], ...] = attrs.field(factory=tuple, converter=_classes)
    ordered: bool = False
    last: bool = False

    @name.validator
    def _check_name(self, _a: attrs.Attribute, value: str) -> None:
        if not _KEBAB.match(value):
            raise ValueError(f"pass name must be kebab-case (e.g. 'to-edge'), got {value!r}")

    def __attrs_post_init__(self) -> None:
        if self.level_out is None:
            object.__setattr__(self, "level_out", self.level_in)
        if self.level_out < self.level_in:
            raise ValueError(
                f"pass {self.name}: level_out {self.level_out.label} is before "
                f"level_in {self.level_in.label}"
            )

    @property
    def is_conversion(self) -> bool:
        return self.level_in != self.level_out


@attrs.frozen
class PassResult:
    """What a pass returns: the new program and whether anything changed.

    ``withheld``: facts of the contract's ``provides`` this run did not establish (a
    partitioner that took nothing delegated nothing: it must not claim ``delegated.*``).
    """

    program: Program
    modified: bool
    withheld: frozenset[Fact] = frozenset()


@attrs.frozen
class PassContext:
    """What a running pass may know of the run around it (read-only)."""

    position: int = 0
    log: Callable[[str], None] = attrs.field(default=lambda _msg: None, eq=False, repr=False)


@attrs.frozen
class Pass:
    """Base of every pass. Subclasses are ``@attrs.frozen`` and set ``info``."""

    info: ClassVar[PassInfo]

    # ------------------------------------------------------------------ to implement

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        raise NotImplementedError(f"{type(self).__name__}.run")

    def unavailable_reason(self) -> str | None:
        """Why this pass cannot run on this machine (missing SDK, OS, ...), or None."""
        return None

    def check_schedule(self, earlier: Sequence[Pass], later: Sequence[Pass]) -> str | None:
        """Why this pass cannot run after ``earlier`` and before ``later``, or None.

        The planner calls it once the order is known, before any work: for constraints
        between options of different passes that facts cannot express (XNNPACK lowers
        8da4w only with a group size that is a multiple of 32). Say what would fix it.
        """
        return None

    # ------------------------------------------------------------------ description

    @classmethod
    def doc(cls) -> str:
        """The one-line doc: the first line of the class docstring."""
        text = (cls.__doc__ or "").strip()
        return text.splitlines()[0].strip() if text else ""

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def contract(self) -> PassInfo:
        """This instance's contract: the class's ``info`` unless options change it.

        Override (e.g. with ``attrs.evolve(self.info, provides=...)``) when an
        option decides a fact: to-edge with ``check_ir_validity=False`` provides
        ``edge.ir-relaxed``. The name and levels must stay the class's.
        """
        return self.info

    def options(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=False)

    def non_default_options(self) -> dict[str, Any]:
        out = {}
        for a in attrs.fields(type(self)):
            if not a.init:
                continue
            value = getattr(self, a.name)
            default = a.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = default.factory()
            if value != default:
                out[a.name] = value
        return out

    def spec(self) -> str:
        """This pass as ``--passes`` reads it: ``name{opt=value,...}``.

        Only options that differ from their defaults are shown, in the syntax the
        pass-list parser reads (``true``/``false``, numbers, bare words, quoted text;
        ``pteflow.passes.spec``), so ``Pass.from_spec(p.spec()) == p``.
        """
        from .spec import format_spec

        return format_spec(self.name, self.non_default_options())

    @classmethod
    def from_spec(cls, text: str, registry: Mapping[str, type[Pass]] | None = None) -> Pass:
        """The pass ``text`` names (one item of a ``--passes`` list): ``spec()``'s inverse.

        ``registry``: pass classes by name; default: this class alone when called on a
        pass class (``EmitPass.from_spec("emit{path=a.pte}")``), else every registered pass.

        Raises:
            UserError: not one pass spec, an unknown pass or option, a refused value.
        """
        from .spec import from_spec

        if registry is None:
            if "info" in vars(cls):
                registry = {cls.info.name: cls}
            else:
                from .registry import load_registry

                registry = load_registry()
        return from_spec(text, registry)

    def describe(self) -> str:
        """How pteflow prints this pass everywhere: ``spec()``, pasteable into ``--passes``."""
        return self.spec()

    # ------------------------------------------------------------------ running

    def apply(self, program: Program, ctx: PassContext | None = None) -> PassResult:
        """Run the pass with its contract checked around it.

        Raises:
            PipelineError: the program is at the wrong level or lacks a required fact.
            InvariantError: the result is at the wrong level, is not a PassResult,
                or a graph fails lint.
        """
        info = self.contract
        if program.level != info.level_in:
            raise PipelineError(
                f"pass {info.name} reads {info.level_in.label} programs, "
                f"got a {program.level.label} program"
            )
        # an assumed fact (``Fact.assumed``) holds until invalidated: check it on the graph
        missing = {
            f for f in info.requires - program.facts if not (f.assumed and f.check(program) is None)
        }
        if missing:
            raise PipelineError(
                f"pass {info.name} requires "
                f"{', '.join(sorted(f.name for f in missing))}, which the "
                "program does not have"
            )
        result = self.run(program, ctx or PassContext())
        if not isinstance(result, PassResult):
            raise InvariantError(
                f"run() returned {type(result).__name__}, not a PassResult", pass_name=info.name
            )
        out = result.program
        if out.level != info.level_out:
            raise InvariantError(
                f"declared level_out {info.level_out.label}, produced {out.level.label}",
                pass_name=info.name,
            )
        if out.level >= Level.ATEN:
            for method, gm in out.graph_modules().items():
                try:
                    gm.graph.lint()
                except Exception as e:
                    raise InvariantError(
                        f"method {method!r}: graph lint failed: {e}", pass_name=info.name
                    ) from e
        gained = info.provides - result.withheld
        out = out.with_facts(gained=gained, lost=info.invalidates - info.provides)
        return PassResult(out, result.modified or info.is_conversion)


def option_error(pass_name: str, option: str, message: str) -> OptionError:
    """The error a pass raises for a bad option: ``pass.option: message``."""
    return OptionError(f"{pass_name}.{option}: {message}")


def one_of(*allowed: Any) -> Callable[[Any, attrs.Attribute, Any], None]:
    """attrs validator: the value is one of ``allowed`` (error lists them)."""

    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in allowed:
            raise option_error(
                instance.info.name,
                attribute.name,
                f"{value!r} is not one of {', '.join(map(repr, allowed))}",
            )

    return check


def positive(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """attrs validator: an int > 0."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise option_error(
            instance.info.name, attribute.name, f"must be a positive integer, got {value!r}"
        )
