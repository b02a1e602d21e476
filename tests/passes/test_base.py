"""The Pass contract: declared data, validated options, apply() checks."""

from __future__ import annotations

from typing import ClassVar

import attrs
import pytest

from pteflow.ir import Level, facts
from pteflow.ir.errors import InvariantError, OptionError, PipelineError
from pteflow.passes import Pass, PassInfo
from pteflow.passes.convert.to_executorch import ToExecutorchPass
from pteflow.passes.emit.emit import EmitPass

from ..fakes import ClaimsQuantizedPass, WrongLevelPass


def test_names_must_be_kebab_case():
    with pytest.raises(ValueError, match="kebab-case"):
        PassInfo(name="Not_Kebab", level_in=Level.ATEN)


def test_level_out_defaults_to_level_in_and_may_not_go_back():
    assert PassInfo(name="a", level_in=Level.EDGE).level_out == Level.EDGE
    with pytest.raises(ValueError, match="before level_in"):
        PassInfo(name="a", level_in=Level.EDGE, level_out=Level.ATEN)


def test_facts_must_be_fact_objects_not_strings():
    with pytest.raises(TypeError, match="Fact objects"):
        PassInfo(name="a", level_in=Level.EDGE, provides={"quantized.pt2e"})  # type: ignore[arg-type]


def test_equal_options_give_equal_passes_and_describe_shows_non_defaults():
    assert EmitPass(path="a.pte") == EmitPass(path="a.pte")
    assert hash(EmitPass(path="a.pte")) == hash(EmitPass(path="a.pte"))
    assert EmitPass().describe() == "emit"
    assert EmitPass(path="x.pte").describe() == "emit{path=x.pte}"


def test_bad_options_are_refused_at_construction():
    with pytest.raises(OptionError, match=r"emit.path: must be a path ending in .pte"):
        EmitPass(path="out.bin")
    with pytest.raises(OptionError, match="to-executorch.sym_shape_eval: 'exact' is not one of"):
        ToExecutorchPass(sym_shape_eval="exact")


def test_doc_is_the_first_docstring_line():
    assert EmitPass.doc().startswith("Write the serialized program")


def test_apply_refuses_the_wrong_input_level(eager_mlp):
    with pytest.raises(PipelineError, match="reads aten programs, got a eager program"):
        ClaimsQuantizedPass().apply(eager_mlp)


def test_apply_refuses_a_missing_required_fact(aten_mlp):
    @attrs.frozen
    class NeedsQuant(Pass):
        """Need quantization."""

        info: ClassVar[PassInfo] = PassInfo(
            name="needs-quant", level_in=Level.ATEN, requires={facts.QUANTIZED_PT2E}
        )

    with pytest.raises(PipelineError, match="requires quantized.pt2e"):
        NeedsQuant().apply(aten_mlp)


def test_apply_catches_a_pass_that_returns_the_wrong_level(aten_mlp):
    with pytest.raises(
        InvariantError,
        match="'wrong-level' broke an invariant: declared level_out aten, produced eager",
    ):
        WrongLevelPass().apply(aten_mlp)


def test_apply_adds_provided_and_drops_invalidated_facts(aten_mlp):
    out = ClaimsQuantizedPass().apply(aten_mlp).program
    assert facts.QUANTIZED_PT2E in out.facts

    @attrs.frozen
    class Dequant(Pass):
        """Forget quantization."""

        info: ClassVar[PassInfo] = PassInfo(
            name="dequant", level_in=Level.ATEN, invalidates={facts.QUANTIZED_PT2E}
        )

        def run(self, program, ctx):
            from pteflow.passes import PassResult

            return PassResult(program, False)

    assert facts.QUANTIZED_PT2E not in Dequant().apply(out).program.facts
