"""Pass lists for the driver: plugins, ``enabled``, ``--set`` overrides.

The text form itself (parsing, printing, typing option values) is
``pteflow.passes.spec``; its names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence

from pteflow.ir.errors import UnknownNameError, UserError
from pteflow.passes import Pass
from pteflow.passes.spec import (
    PassSpec,
    Quoted,
    build_pass,
    coerce,
    format_spec,
    format_value,
    from_spec,
    parse_pass_list,
    read_value,
)

__all__ = [
    "PassSpec",
    "Quoted",
    "apply_overrides",
    "build_pass",
    "build_passes",
    "coerce",
    "enabled_only",
    "format_spec",
    "format_value",
    "from_spec",
    "parse_pass_list",
    "read_value",
]


def build_passes(
    specs: Sequence[PassSpec], plugins: Sequence[str] = (), *, no_delegate: bool = False
) -> tuple[dict[str, type[Pass]], list[Pass]]:
    """The registry (built-in, entry points, ``plugins``) and the passes ``specs`` name.

    ``no_delegate``: each pass as ``--no-delegate`` runs it (``policy.without_delegation``).
    """
    from pteflow.passes.registry import load_registry

    extra = []
    if plugins:
        from .plugins import load_plugins

        extra = load_plugins(plugins)
    registry = load_registry(extra=extra)
    passes = [build_pass(registry, s) for s in specs]
    if no_delegate:
        from pteflow.passes.policy import without_delegation

        passes = [q for q in map(without_delegation, passes) if q is not None]
    return registry, passes


def enabled_only(specs: Sequence[PassSpec]) -> list[PassSpec]:
    """Drop the specs whose ``enabled`` option is false; strip ``enabled`` from the rest.

    ``enabled`` is a key every pass has in a pipeline: ``enabled = false`` keeps an
    optional pass in the file, off until ``--set PASS.enabled=true``.
    """
    out = []
    for s in specs:
        if "enabled" not in s.options:
            out.append(s)
            continue
        if coerce(s.options["enabled"], bool, f"{s.name}.enabled"):
            out.append(PassSpec(s.name, {k: v for k, v in s.options.items() if k != "enabled"}))
    return out


def apply_overrides(specs: Sequence[PassSpec], overrides: Sequence[str]) -> list[PassSpec]:
    """Apply ``--set PASS.OPTION=VALUE`` to every pass of that name (at least one).

    A VALUE that is one quoted string (``"a, b.pte"``) is read as ``--passes`` reads it.
    """
    out = list(specs)
    for text in overrides:
        target, eq, value = text.partition("=")
        name, dot, option = target.partition(".")
        if not eq or not dot or not name or not option:
            raise UserError(f"--set {text!r}: expected PASS.OPTION=VALUE")
        hits = [i for i, s in enumerate(out) if s.name == name]
        if not hits:
            raise UnknownNameError("pass in this pipeline", name, {s.name for s in out})
        for i in hits:
            out[i] = PassSpec(out[i].name, {**out[i].options, option: read_value(value)})
    return out
