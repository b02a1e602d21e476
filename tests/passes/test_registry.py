"""Built-in passes are found; other packages add theirs through entry points."""

from __future__ import annotations

import sys
import textwrap

import pytest

from pteflow.ir.errors import ConflictError, UnknownNameError
from pteflow.passes.registry import load_registry, lookup

PASS_MODULE = """
from typing import ClassVar
import attrs
from pteflow.ir import Level
from pteflow.passes import Pass, PassInfo, PassResult

@attrs.frozen
class TeamPass(Pass):
    \"\"\"Do what the team needs.\"\"\"
    info: ClassVar[PassInfo] = PassInfo(name={name!r}, level_in=Level.EDGE)

    def run(self, program, ctx):
        return PassResult(program, False)
"""


def _install(tmp_path, monkeypatch, dist: str, module: str, pass_name: str, target: str):
    (tmp_path / f"{module}.py").write_text(PASS_MODULE.format(name=pass_name))
    info = tmp_path / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(f"""\
        [pteflow.passes]
        team = {target}
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)


def test_builtin_passes_are_registered():
    registry = load_registry()
    assert {"export", "to-edge", "to-executorch", "emit"} <= set(registry)


def test_an_entry_point_adds_a_pass_class(tmp_path, monkeypatch):
    _install(
        tmp_path, monkeypatch, "teampasses", "team_passes_a", "team-pass", "team_passes_a:TeamPass"
    )
    registry = load_registry()
    assert registry["team-pass"].doc() == "Do what the team needs."


def test_an_entry_point_may_name_a_module(tmp_path, monkeypatch):
    _install(tmp_path, monkeypatch, "teammod", "team_passes_b", "team-mod-pass", "team_passes_b")
    assert "team-mod-pass" in load_registry()


def test_a_name_clash_names_both_sources(tmp_path, monkeypatch):
    _install(tmp_path, monkeypatch, "clashing", "team_passes_c", "emit", "team_passes_c:TeamPass")
    with pytest.raises(
        ConflictError,
        match=r"'emit' is defined twice: by .*EmitPass "
        r"\(built-in\) and by entry point 'team'.*clashing",
    ):
        load_registry()


def test_lookup_suggests_the_closest_names():
    with pytest.raises(UnknownNameError, match="unknown pass 'to-egde'; did you mean to-edge"):
        lookup(load_registry(), "to-egde")


#: Class names that differ from the pass name's, and why.
CLASS_NAME_EXCEPTIONS = {
    "export": "TorchExportPass",  # ExportPass is executorch.exir.pass_base's, which it would shadow
}


def _table_rows(cls: type) -> bool:
    """A class generated from a table module's rows (the module's ``PASSES``)."""
    table = getattr(sys.modules[cls.__module__], "PASSES", {})
    return cls in getattr(table, "values", lambda: table)()


def test_file_class_and_pass_names_agree():
    """One pass per module: ``quantize-8da4w`` is ``quantize_8da4w.py``'s ``Quantize8da4wPass``.

    A table module (one that generates passes from rows: ``PASSES``) is exempt: its passes
    share the module, and their classes are named after the rows.
    """
    bad = []
    for name, cls in load_registry(entry_points=False).items():
        if _table_rows(cls):
            continue
        module = cls.__module__.rsplit(".", 1)[1]
        if module != name.replace("-", "_"):
            bad.append(f"pass {name} lives in {module}.py")
        camel = "".join(p[:1].upper() + p[1:] for p in name.split("-")) + "Pass"
        if cls.__name__ != CLASS_NAME_EXCEPTIONS.get(name, camel):
            bad.append(f"pass {name} is class {cls.__name__}, not {camel}")
    assert not bad
