"""The text form of a pass, both ways: ``export,to-edge{check_ir_validity=false}``.

``format_spec`` prints a pass as ``--passes`` reads it and ``parse_pass_list`` /
``build_pass`` read it back, so every line pteflow prints (``driver plan``, the
progress lines, the summary, the report's ``order``, reproducers) can be pasted
into ``--passes``. The syntax:

    pass-name                    defaults for every option
    pass-name{key=value,...}     options; commas separate them, spaces around are ignored
    true / false / none          bools and "no value" (``yes``/``no``/``on``/``off``/``1``/``0``
                                 read as bools too)
    32, -255.0, 1e-05            numbers
    model.pte, fp16              bare words: text without ``, { } = " '`` or spaces
    "a, b.pte"  'x.pte'          quoted text: anything; inside, ``\\`` escapes the next
                                 character (``\\"``, ``\\\\``). Quoted text is always text
                                 (``"none"`` is the word, not "no value")
    a:b:c                        a tuple (items separated by ``:``)
"""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

import attrs

from pteflow.ir.errors import OptionError, UnknownNameError, UserError

from .base import Pass
from .registry import lookup


@attrs.frozen
class PassSpec:
    """A pass named in a pipeline, with its options as given (text or typed)."""

    name: str
    options: Mapping[str, Any] = attrs.field(factory=dict)


class Quoted(str):
    """Text that was quoted in a pass list: always read as text, never as none."""


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_NONE = {"none", "null", ""}
_BARE = re.compile(r"[A-Za-z0-9_./+@%-][A-Za-z0-9_./+@%:-]*")


# --------------------------------------------------------------------------- printing


def _looks_like_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def quote(text: str) -> str:
    """``text`` in double quotes, with ``\\`` and ``"`` escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_text(text: str) -> str:
    """``text`` bare when it reads back as that text whatever the option's type, else quoted."""
    if (
        _BARE.fullmatch(text)
        and text.lower() not in _TRUE | _FALSE | _NONE
        and not _looks_like_number(text)
    ):
        return text
    return quote(text)


def format_value(value: Any) -> str:
    """An option value as ``--passes`` reads it back (``true``, ``32``, ``"a b.pte"``)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # the shortest text float() reads back as the same value
    if isinstance(value, tuple | list):
        return format_text(":".join(v if isinstance(v, str) else format_value(v) for v in value))
    return format_text(str(value))


def format_spec(name: str, options: Mapping[str, Any]) -> str:
    """``name{key=value,...}``, or ``name`` without options."""
    if not options:
        return name
    return name + "{" + ",".join(f"{k}={format_value(v)}" for k, v in options.items()) + "}"


# --------------------------------------------------------------------------- parsing


def _skip_spaces(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _quoted(text: str, pos: int, where: str) -> tuple[Quoted, int]:
    """The quoted text starting at ``text[pos]`` (a quote) and the index after it."""
    mark, out, i = text[pos], [], pos + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == mark:
            return Quoted("".join(out)), i + 1
        out.append(ch)
        i += 1
    raise UserError(
        f"unclosed {mark} in {where}: {text[pos:]!r}; end the value with {mark} "
        f"(write \\{mark} for a {mark} inside it)"
    )


def read_value(text: str) -> str:
    """One option value on its own (``--set P.O=VALUE``): the quoted text when the whole
    value is one quoted string, else ``text`` as given."""
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] in "\"'" and stripped[-1] == stripped[0]:
        try:
            value, end = _quoted(stripped, 0, "a --set value")
        except UserError:
            return text
        if end == len(stripped):
            return value
    return text


def _value(text: str, pos: int, where: str) -> tuple[str, int]:
    """One option value starting at ``pos``; returns it and the index of the , or } after."""
    pos = _skip_spaces(text, pos)
    if pos < len(text) and text[pos] in "\"'":
        value, end = _quoted(text, pos, where)
        end = _skip_spaces(text, end)
        if end < len(text) and text[end] not in ",}":
            raise UserError(
                f"text after the quoted value of {where}: {text[pos:]!r}; quote the whole value"
            )
        return value, end
    depth, end = 0, pos
    while end < len(text):
        ch = text[end]
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                break
            depth -= 1
        elif ch == "," and depth == 0:
            break
        end += 1
    return text[pos:end].strip(), end


def _options(text: str, pos: int, name: str, whole: str) -> tuple[dict[str, str], int]:
    """The ``key=value`` pairs after the ``{`` at ``pos - 1``; returns them and the index
    after the closing ``}``."""
    options: dict[str, str] = {}
    while True:
        pos = _skip_spaces(text, pos)
        if pos >= len(text):
            raise UserError(f"unclosed '{{' in pass list {whole!r}")
        if text[pos] == "}":
            return options, pos + 1
        if text[pos] == ",":
            pos += 1
            continue
        start = pos
        while pos < len(text) and text[pos] not in "=,{}":
            pos += 1
        key = text[start:pos].strip()
        if pos >= len(text) or text[pos] != "=" or not key:
            end = pos
            while end < len(text) and text[end] not in ",}":
                end += 1
            raise UserError(f"option {text[start:end].strip()!r} of {name} must be KEY=VALUE")
        value, pos = _value(text, pos + 1, f"option {key} of {name}")
        if key in options:
            raise UserError(f"option {key} of {name} is given twice")
        options[key] = value


def parse_pass_list(text: str) -> list[PassSpec]:
    """Parse ``a,b{x=1,y="t, u"},c`` into specs (the syntax is in the module doc).

    Raises:
        UserError: an empty name, unbalanced braces, an unclosed quote, a pair without ``=``.
    """
    specs: list[PassSpec] = []
    pos = 0
    while True:
        start = pos
        while pos < len(text) and text[pos] not in "{},":
            pos += 1
        name = text[start:pos].strip()
        options: dict[str, str] = {}
        if pos < len(text) and text[pos] == "}":
            raise UserError(f"unbalanced '}}' at character {pos + 1} of pass list {text!r}")
        if pos < len(text) and text[pos] == "{":
            options, pos = _options(text, pos + 1, name or "?", text)
            item = text[start:pos].strip()
            if not name:
                raise UserError(f"pass options without a pass name: {item!r} in {text!r}")
            after = _skip_spaces(text, pos)
            if after < len(text) and text[after] != ",":
                raise UserError(f"text after '}}' in {text[start:].strip()!r}")
            pos = after
        if not name:
            raise UserError(f"empty pass name in pass list {text!r}")
        specs.append(PassSpec(name, options))
        if pos >= len(text):
            return specs
        pos += 1  # the comma


# --------------------------------------------------------------------------- typing


def coerce(value: Any, ty: Any, where: str) -> Any:
    """Turn text (from the CLI) or TOML data into a value of field type ``ty``."""
    origin = typing.get_origin(ty)
    quoted = isinstance(value, Quoted)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(ty)
        if type(None) in args and (
            value is None or (isinstance(value, str) and not quoted and value.lower() in _NONE)
        ):
            return None
        candidates = [a for a in args if a is not type(None)]
        if quoted and str in candidates:  # quoted text is text first
            candidates.remove(str)
            candidates.insert(0, str)
        errors = []
        for arg in candidates:
            try:
                return coerce(value, arg, where)
            except OptionError as e:
                errors.append(str(e))
        raise OptionError(errors[0] if errors else f"{where}: cannot read {value!r}")
    if origin is typing.Literal:
        allowed = typing.get_args(ty)
        for option in allowed:
            if value == option:
                return option
        if isinstance(value, str):
            for option in allowed:
                if not isinstance(option, str) and format_value(option) == value.lower():
                    return option
        raise OptionError(f"{where}: {value!r} is not one of {', '.join(map(repr, allowed))}")
    if origin in (tuple, list):
        items = (
            value
            if isinstance(value, list | tuple)
            else [v for v in str(value).replace(";", ":").split(":") if v]
        )
        (inner, *_rest) = typing.get_args(ty) or (str,)
        return tuple(coerce(v, inner, where) for v in items)
    if ty is bool:
        if isinstance(value, bool):
            return value
        low = str(value).lower()
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise OptionError(f"{where}: expected true or false, got {str(value)!r}")
    if ty in (int, float):
        if isinstance(value, bool) or (ty is int and isinstance(value, float)):
            raise OptionError(f"{where}: expected {ty.__name__}, got {value!r}")
        try:
            number = ty(value)
        except (TypeError, ValueError):
            raise OptionError(f"{where}: expected {ty.__name__}, got {str(value)!r}") from None
        if not math.isfinite(number):
            raise OptionError(f"{where}: expected a finite {ty.__name__}, got {str(value)!r}")
        return number
    if ty is str:
        if isinstance(value, str):
            return str.__str__(value)  # a plain str, not Quoted
        raise OptionError(f"{where}: expected text, got {value!r}")
    return str.__str__(value) if quoted else value


def field_type(field: attrs.Attribute) -> Any:
    """The type an option's text is read as: its annotation, else its default's type."""
    if field.type is not None:
        return field.type
    default = field.default
    if isinstance(default, bool | int | float | str):
        return type(default)
    return None


def build_pass(registry: Mapping[str, type[Pass]], spec: PassSpec) -> Pass:
    """Instantiate the pass ``spec`` names with its options coerced to the field types.

    Raises:
        UnknownNameError: unknown pass or option (with the closest names).
        OptionError: a value the pass refuses.
    """
    cls = lookup(dict(registry), spec.name)
    attrs.resolve_types(cls)
    fields = {f.name: f for f in attrs.fields(cls) if f.init}
    kwargs = {}
    for key, value in spec.options.items():
        if key not in fields:
            raise UnknownNameError(f"option of pass {spec.name}", key, fields)
        kwargs[key] = coerce(value, field_type(fields[key]), f"{spec.name}.{key}")
    try:
        return cls(**kwargs)
    except OptionError:
        raise
    except (TypeError, ValueError) as e:
        raise OptionError(f"{spec.name}: {e}") from e


def from_spec(text: str, registry: Mapping[str, type[Pass]]) -> Pass:
    """The one pass ``text`` names (``Pass.spec()``'s inverse).

    Raises:
        UserError: ``text`` is not one pass spec, or names an unknown pass or option,
            or a value the pass refuses.
    """
    specs = parse_pass_list(text)
    if len(specs) != 1:
        raise UserError(f"expected one pass, got {len(specs)} in {text!r}")
    return build_pass(registry, specs[0])
