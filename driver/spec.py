"""Pass lists and option values from text: ``export,to-edge{check_ir_validity=false}``."""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from pteflow.ir.errors import OptionError, UnknownNameError, UserError
from pteflow.passes import Pass
from pteflow.passes.registry import lookup


@attrs.frozen
class PassSpec:
    """A pass named in a pipeline, with its options as given (text or typed)."""

    name: str
    options: Mapping[str, Any] = attrs.field(factory=dict)


def parse_pass_list(text: str) -> list[PassSpec]:
    """Parse ``a,b{x=1,y=two},c`` into specs. Commas inside braces separate options."""
    specs: list[PassSpec] = []
    depth, start = 0, 0
    items = []
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise UserError(f"unbalanced '}}' at character {i + 1} of pass list {text!r}")
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth:
        raise UserError(f"unclosed '{{' in pass list {text!r}")
    items.append(text[start:])
    for raw in items:
        item = raw.strip()
        if not item:
            raise UserError(f"empty pass name in pass list {text!r}")
        name, _, rest = item.partition("{")
        if not name.strip():
            raise UserError(f"pass options without a pass name: {item!r} in {text!r}")
        options: dict[str, str] = {}
        if rest:
            if not rest.endswith("}"):
                raise UserError(f"text after '}}' in {item!r}")
            for pair in filter(None, (p.strip() for p in rest[:-1].split(","))):
                key, eq, value = pair.partition("=")
                if not eq or not key.strip():
                    raise UserError(f"option {pair!r} of {name.strip()} must be KEY=VALUE")
                if key.strip() in options:
                    raise UserError(f"option {key.strip()} of {name.strip()} is given twice")
                options[key.strip()] = value.strip()
        specs.append(PassSpec(name.strip(), options))
    return specs


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _coerce(value: Any, ty: Any, where: str) -> Any:
    """Turn text (from the CLI) or TOML data into a value of field type ``ty``."""
    origin = typing.get_origin(ty)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(ty)
        if type(None) in args and (
            value is None or (isinstance(value, str) and value.lower() in ("none", "null", ""))
        ):
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except OptionError as e:
                errors.append(str(e))
        raise OptionError(errors[0] if errors else f"{where}: cannot read {value!r}")
    if origin is typing.Literal:
        allowed = typing.get_args(ty)
        if value in allowed:
            return value
        raise OptionError(f"{where}: {value!r} is not one of {', '.join(map(repr, allowed))}")
    if origin in (tuple, list):
        items = (
            value
            if isinstance(value, list | tuple)
            else [v for v in str(value).replace(";", ":").split(":") if v]
        )
        (inner, *_rest) = typing.get_args(ty) or (str,)
        return tuple(_coerce(v, inner, where) for v in items)
    if ty is bool:
        if isinstance(value, bool):
            return value
        low = str(value).lower()
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise OptionError(f"{where}: expected true or false, got {value!r}")
    if ty in (int, float):
        if isinstance(value, bool) or (ty is int and isinstance(value, float)):
            raise OptionError(f"{where}: expected {ty.__name__}, got {value!r}")
        try:
            number = ty(value)
        except (TypeError, ValueError):
            raise OptionError(f"{where}: expected {ty.__name__}, got {value!r}") from None
        if not math.isfinite(number):
            raise OptionError(f"{where}: expected a finite {ty.__name__}, got {value!r}")
        return number
    if ty is str:
        if isinstance(value, str):
            return value
        raise OptionError(f"{where}: expected text, got {value!r}")
    return value


def build_pass(registry: Mapping[str, type[Pass]], spec: PassSpec) -> Pass:
    """Instantiate the pass ``spec`` names with its options coerced to the field types.

    Raises:
        UnknownNameError: unknown pass or option (with the closest names).
        OptionError: a value the pass refuses.
    """
    cls = lookup(dict(registry), spec.name)
    attrs.resolve_types(cls)
    fields = {f.name: f for f in attrs.fields(cls)}
    kwargs = {}
    for key, value in spec.options.items():
        if key not in fields:
            raise UnknownNameError(f"option of pass {spec.name}", key, fields)
        kwargs[key] = _coerce(value, fields[key].type, f"{spec.name}.{key}")
    try:
        return cls(**kwargs)
    except OptionError:
        raise
    except (TypeError, ValueError) as e:
        raise OptionError(f"{spec.name}: {e}") from e


def build_passes(
    specs: Sequence[PassSpec], plugins: Sequence[str] = (), *, no_delegate: bool = False
) -> tuple[dict[str, type[Pass]], list[Pass]]:
    """The registry (built-in, entry points, ``plugins``) and the passes ``specs`` name.

    ``no_delegate``: each pass as ``--no-delegate`` runs it (``Pass.without_delegation``).
    """
    from pteflow.passes.registry import load_registry

    extra = []
    if plugins:
        from .plugins import load_plugins

        extra = load_plugins(plugins)
    registry = load_registry(extra=extra)
    passes = [build_pass(registry, s) for s in specs]
    if no_delegate:
        passes = [q for q in (p.without_delegation() for p in passes) if q is not None]
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
        if _coerce(s.options["enabled"], bool, f"{s.name}.enabled"):
            out.append(PassSpec(s.name, {k: v for k, v in s.options.items() if k != "enabled"}))
    return out


def apply_overrides(specs: Sequence[PassSpec], overrides: Sequence[str]) -> list[PassSpec]:
    """Apply ``--set PASS.OPTION=VALUE`` to every pass of that name (at least one)."""
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
            out[i] = PassSpec(out[i].name, {**out[i].options, option: value})
    return out
