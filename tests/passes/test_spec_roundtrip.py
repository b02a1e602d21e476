"""Every pass line pteflow prints parses back: ``from_spec(p.spec()) == p``.

For every registered pass (built-in, plus a plugin registered here), with its defaults
and with each option set to non-default values generated from the option's type and
validator (bools flipped, other Literal / one-of values, other numbers, text with
commas, braces, quotes, spaces and ``=``).
"""

from __future__ import annotations

import contextlib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import attrs
import pytest

from pteflow.driver.spec import build_pass, parse_pass_list
from pteflow.ir import Level
from pteflow.ir.errors import UserError
from pteflow.passes import Pass, PassInfo
from pteflow.passes.registry import load_registry
from pteflow.passes.spec import Quoted, field_type

AWKWARD = [
    "a, b{c}=d \"e\" 'f' \\g",
    " lead, and trail ",
    "x=y",
    "}",
    "none",
    "TRUE",
    "32",
    "1e5",
    "",
    "ends with \\",
]


@attrs.frozen
class _PluginPass(Pass):
    """A plugin with every kind of option the parser reads."""

    info = PassInfo("spec-plugin", Level.ATEN)
    label: str | None = None
    words: tuple[str, ...] = ("a", "b")
    sizes: tuple[int, ...] = ()
    mode: Literal["fast", "slow path", "none"] = "fast"
    bits: Literal[4, 8] = 4
    scale: float = 0.5
    count: int = 3
    flag: bool = False
    maybe: int | None = 7


def _registry() -> dict[str, type[Pass]]:
    return load_registry(extra=[_PluginPass])


def _listed(message: str) -> list[str]:
    """The values a validator's error lists after 'one of'."""
    m = re.search(r"one of (.+)$", message)
    return [v.strip().strip("'") for v in m.group(1).split(",")] if m else []


def _candidates(ty: Any, default: Any, token_file: str) -> list[Any]:
    origin = typing.get_origin(ty)
    if origin is Literal:
        return list(typing.get_args(ty))
    if origin in (typing.Union, types.UnionType):
        out: list[Any] = [None]
        for arg in typing.get_args(ty):
            if arg is not type(None):
                out += _candidates(arg, default, token_file)
        return out
    if origin is tuple:
        (inner, *_rest) = typing.get_args(ty)
        if inner is int:
            return [(1,), (2, 30, -4)]
        return [("x, y", "{z}", "a b='c'"), ("one",)]
    if ty is bool:
        return [True, False]
    if ty is int:
        base = default if isinstance(default, int) else 0
        return [base + 1, base * 2, 1, 0, 64, 15, -1]
    if ty is float:
        base = default if isinstance(default, float) else 0.0
        return [base / 3, base - 1.0, base * 2, 0.1, -1e-05, 2.5]
    if ty is str:
        return [*AWKWARD, *(a + ".pte" for a in AWKWARD), token_file]
    raise AssertionError(f"no value generator for option type {ty!r}: add one")


def _variants(cls: type[Pass], token_file: str) -> dict[str, list[Pass]]:
    """Per option: instances of ``cls`` with that option set to an accepted non-default."""
    attrs.resolve_types(cls)
    default = cls()
    out: dict[str, list[Pass]] = {}
    for field in attrs.fields(cls):
        if not field.init:
            continue
        current = getattr(default, field.name)
        found, listed = [], []
        values = _candidates(field_type(field), current, token_file)
        for value in values:
            if value == current:
                continue
            try:
                found.append(attrs.evolve(default, **{field.name: value}))
            except (TypeError, ValueError) as e:
                listed += _listed(str(e))
        for text in dict.fromkeys(listed):  # the values a one-of validator names
            value = type(current)(text) if current is not None else text
            if value != current:
                with contextlib.suppress(TypeError, ValueError):
                    found.append(attrs.evolve(default, **{field.name: value}))
        out[field.name] = list({p.spec(): p for p in found}.values())
    return out


@pytest.fixture(scope="module")
def token_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("spec") / "tokens, {x}='y' \"z\".txt"
    path.write_text("1 2 3\n")
    return str(path)


def _roundtrip(p: Pass, registry: dict[str, type[Pass]]) -> None:
    text = p.describe()
    assert text == p.spec()
    (spec,) = parse_pass_list(text)  # what --passes does with the printed line
    back = build_pass(registry, spec)
    assert back == p, f"{text!r} parsed back as {back!r}, not {p!r}"
    assert back.spec() == text
    assert all(type(v) is not Quoted for v in back.options().values())  # plain str
    assert Pass.from_spec(text, registry) == p


@pytest.mark.parametrize("name", sorted(_registry()))
def test_every_registered_pass_round_trips(name, token_file):
    registry = _registry()
    cls = registry[name]
    _roundtrip(cls(), registry)
    assert cls().spec() == name  # defaults: the bare name
    for option, found in _variants(cls, token_file).items():
        assert found, f"{name}.{option}: no non-default value was accepted; teach the test one"
        for p in found:
            _roundtrip(p, registry)
            assert option in p.spec()


def test_the_plugin_exercises_every_option_kind(token_file):
    found = _variants(_PluginPass, token_file)
    assert {k: len(v) >= 1 for k, v in found.items()} == dict.fromkeys(found, True)
    texts = [p.spec() for ps in found.values() for p in ps]
    assert 'spec-plugin{label="none"}' in texts  # the word, not "no value"
    assert "spec-plugin{label=none}" not in texts
    assert "spec-plugin{maybe=none}" in texts
    assert 'spec-plugin{mode="slow path"}' in texts
    assert "spec-plugin{bits=8}" in texts


def test_printed_values_use_the_cli_syntax():
    from pteflow.passes.convert.to_edge import ToEdgePass
    from pteflow.passes.emit.emit import EmitPass

    assert ToEdgePass(check_ir_validity=False).spec() == "to-edge{check_ir_validity=false}"
    assert EmitPass(path="x.pte").spec() == "emit{path=x.pte}"
    assert EmitPass(path="a, b.pte").spec() == 'emit{path="a, b.pte"}'
    assert EmitPass(path='q"\\.pte').spec() == r'emit{path="q\"\\.pte"}'


def test_from_spec_on_a_class_reads_that_pass_only():
    from pteflow.passes.emit.emit import EmitPass

    assert EmitPass.from_spec("emit{path='x.pte'}") == EmitPass(path="x.pte")
    with pytest.raises(UserError, match="unknown pass 'export'|export"):
        EmitPass.from_spec("export")
    with pytest.raises(UserError, match="expected one pass, got 2"):
        Pass.from_spec("export,emit")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('emit{path="a.pte}', 'unclosed " in option path of emit'),
        ("emit{path='a.pte' b}", "text after the quoted value of option path of emit"),
        ('emit{path="a",path="b"}', "option path of emit is given twice"),
        ("emit{path}", "option 'path' of emit must be KEY=VALUE"),
    ],
)
def test_quoting_mistakes_are_one_clear_error(text, message):
    with pytest.raises(UserError, match=re.escape(message)):
        parse_pass_list(text)


def test_quoted_text_keeps_separators_and_unquoted_text_is_as_before():
    (a, b, c) = parse_pass_list("x{p=\"1,2}{=3\", q = 'it\\'s' },y{r=plain text},z")
    assert (a.name, a.options) == ("x", {"p": "1,2}{=3", "q": "it's"})
    assert (b.name, b.options) == ("y", {"r": "plain text"})
    assert (c.name, c.options) == ("z", {})


def test_an_option_typed_only_by_its_default_reads_true():
    """qnn edge passes are built with attrs.make_class: their fields have no annotation."""
    registry = load_registry()
    (spec,) = parse_pass_list("qnn-fold-qdq{force_fold=true}")
    assert build_pass(registry, spec).non_default_options() == {"force_fold": True}


def test_token_file_name_is_awkward(token_file):
    assert Path(token_file).exists() and "," in token_file and "'" in token_file
