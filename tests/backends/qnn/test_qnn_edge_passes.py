"""QNN's edge passes as pteflow passes: the table, the constraints, and the real graph.

Contract tests read only the classes (and upstream's table). The graph tests run the
passes on the quantized tiny Llama at EDGE (built once per session by ``_qnn.qnn_edge``).
"""

from __future__ import annotations

import pytest
import torch

from pteflow.backends.qnn import qnn_edge_passes as q
from pteflow.backends.qnn.partition_qnn import PartitionQnnPass
from pteflow.ir import Level, facts
from pteflow.ir.errors import OptionError, UnsatisfiedError
from pteflow.passes import PassManager, plan
from pteflow.passes.convert.to_edge import ToEdgePass
from pteflow.passes.graph_pass import OWNED
from pteflow.passes.registry import load_registry

from ._qnn import qnn_edge, run_method


def _upstream_manager():
    from executorch.backends.qualcomm._passes.backends.htp.qnn_htp_pass_manager import (
        QnnHtpPassManager,
    )

    return QnnHtpPassManager


# =========================================================================== the table


def test_every_upstream_edge_pass_is_wrapped_once():
    """The HTP pass manager's capture-program passes, active or not, one pteflow pass each."""
    upstream = {cls.__name__ for cls, _active in _upstream_manager().get_default_pass_activations()}
    assert set(q.PASSES) == upstream
    assert len({cls.info.name for cls in q.PASSES.values()}) == len(q.PASSES)


def test_export_llama_set_is_the_default_activations_plus_its_additions():
    activations = _upstream_manager().get_default_pass_activations()
    active = {cls.__name__ for cls, on in activations if on}
    # export_llama's _to_edge_and_lower_llama turns these on for QNN
    assert set(q.EXPORT_LLAMA_SET) == active | {"AnnotateStack", "ConvertBmmToMatmul", "TagQuantIO"}


def test_after_constraints_are_qnns_dependency_table():
    """For each pass, ``after`` is exactly its row of QNN's table (among wrapped passes)."""
    table = _upstream_manager().get_passes_dependency_for_capture_program()
    for name, cls in q.PASSES.items():
        declared = {c.upstream for c in cls.info.after}
        row = {dep.__name__ for dep in table.get(_upstream_class(name), ())} & set(q.PASSES)
        if name == q.LAST:
            assert declared == set(q.PASSES) - {q.LAST}
            assert row <= declared
        else:
            assert declared == row, name


def _upstream_class(name: str) -> type:
    import executorch.backends.qualcomm._passes as upstream

    return getattr(upstream, name)


def test_every_qnn_edge_pass_runs_before_partitioning_on_a_relaxed_edge_program():
    for cls in q.PASSES.values():
        assert cls.info.level_in == cls.info.level_out == Level.EDGE
        assert cls.info.before == (PartitionQnnPass,)
        assert cls.info.requires == {facts.EDGE_IR_RELAXED}


def test_no_delegate_keeps_no_pass_that_needs_a_dropped_one():
    """A pass QNN orders after a QNN-only pass is QNN-only too (upstream never runs it alone)."""
    for name, cls in q.PASSES.items():
        if any(dep.info.delegation == "qnn" for dep in cls.info.after):
            assert cls.info.delegation == "qnn", name


def test_no_delegate_split():
    dropped = {c.upstream for c in q.PASSES.values() if c.info.delegation == "qnn"}
    assert {"FoldQDQ", "AnnotateQuantAttrs", "LayoutTransform", "ConvertBmmToMatmul",
            "RecomposeRmsNorm", "TagQuantIO", "ResolveDebugHandle"} <= dropped  # fmt: skip
    kept = set(q.PASSES) - dropped
    assert {"RemoveRedundancy", "I64toI32", "DecomposeReciprocal", "DecomposeAddmm"} <= kept


def test_each_pass_is_registered_under_its_own_name_with_a_doc():
    registry = load_registry(entry_points=False)
    for cls in q.PASSES.values():
        assert registry[cls.info.name] is cls
        assert cls.doc() and not cls.doc().startswith("Wraps")
        assert cls.upstream in (cls.__doc__ or "")
    assert "QnnEdgePass" not in {c.__name__ for c in registry.values()}


def test_bad_option_refused_at_construction():
    with pytest.raises(OptionError, match=r"qnn-fold-qdq\.force_fold: must be true or false"):
        q.PASSES["FoldQDQ"](force_fold="yes")
    assert q.PASSES["FoldQDQ"](force_fold=True).describe() == "qnn-fold-qdq{force_fold=true}"
    with pytest.raises(TypeError):
        q.PASSES["RemoveRedundancy"](force_fold=True)


# =========================================================================== planning


def _plan(passes, **kwargs):
    return plan(passes, start_level=Level.ATEN, initial_facts=[facts.QUANTIZED_PT2E], **kwargs)


def test_plan_orders_them_as_qnns_table_requires_whatever_the_listed_order():
    table = _upstream_manager().get_passes_dependency_for_capture_program()
    edge = list(reversed(q.passes()))  # listed backwards: only the constraints order them
    the_plan = _plan([PartitionQnnPass(), *edge, ToEdgePass(check_ir_validity=False)])
    order = [p.name for p in the_plan.ordered_passes()]
    assert order[0] == "to-edge" and order[-2:] == ["qnn-resolve-debug-handle", "partition-qnn"]
    rank = {
        p.upstream: i for i, p in enumerate(the_plan.ordered_passes()) if hasattr(p, "upstream")
    }
    for that, these in table.items():
        for this in these:
            if that.__name__ in rank and this.__name__ in rank:
                assert rank[this.__name__] < rank[that.__name__], (this, that)


def test_plan_says_why_each_pass_sits_where_it_does():
    the_plan = _plan([ToEdgePass(check_ir_validity=False), *q.passes(), PartitionQnnPass()])
    text = the_plan.render(all_reasons=True)
    assert "qnn-fold-qdq declares after qnn-annotate-quant-attrs" in text
    assert "qnn-layout-transform declares before partition-qnn" in text
    short = the_plan.render()  # implied constraints left out: one line for the partitioner
    assert "qnn-layout-transform declares before partition-qnn" not in short
    assert "qnn-resolve-debug-handle declares before partition-qnn" in short
    assert "--all-reasons lists them" in short


def test_plan_refuses_a_strict_edge_program():
    with pytest.raises(UnsatisfiedError, match=r"requires fact 'edge\.ir-relaxed'"):
        _plan([ToEdgePass(), *q.passes()])


# =========================================================================== the real graph


@pytest.fixture(scope="module")
def edge():
    return qnn_edge("qnn-16a4w")


@pytest.mark.slow
def test_pass_by_pass_equals_upstreams_pipeline(edge):
    """The 37 passes through pteflow's manager give upstream's graph, op for op."""
    from functools import partial

    from executorch.backends.qualcomm._passes import (
        AnnotateStack,
        ConvertBmmToMatmul,
        TagQuantIO,
    )
    from executorch.backends.qualcomm.quantizer.custom_annotation import (
        get_custom_quant_ios_dtype,
    )
    from executorch.backends.qualcomm.utils.constants import (
        QCOM_PASS_ACTIVATE_KEY,
        QCOM_PASS_ARGS_KWARGS_DEFAULTS_KEY,
    )

    ours = PassManager(q.passes(), verify="each").run(edge.fresh()).program
    theirs = edge.fresh()
    manager = _upstream_manager()
    jobs = manager.get_capture_program_passes()
    for cls in (AnnotateStack, ConvertBmmToMatmul, TagQuantIO):  # as export_llama does
        jobs[cls][QCOM_PASS_ACTIVATE_KEY] = True
    cache_shape = torch.Size((1, 128, 2, 16))  # export_llama: (B, max_context_len, n_kv, D)
    jobs[TagQuantIO][QCOM_PASS_ARGS_KWARGS_DEFAULTS_KEY]["get_quant_io_dtype_fn"] = partial(
        get_custom_quant_ios_dtype, cache_shape
    )
    manager().transform_for_to_edge_pipeline(
        theirs.exported_programs()["forward"],
        passes_job=jobs,
        dep_table=manager.get_passes_dependency_for_capture_program(),
    )
    ours_gm = ours.exported_programs()["forward"].graph_module
    theirs_gm = theirs.exported_programs()["forward"].graph_module
    assert ours_gm.code == theirs_gm.code
    from executorch.backends.qualcomm.utils.constants import QCOM_QUANTIZED_IO

    tagged = [n.name for n in ours_gm.graph.nodes if QCOM_QUANTIZED_IO in n.meta]
    assert tagged == [n.name for n in theirs_gm.graph.nodes if QCOM_QUANTIZED_IO in n.meta]
    assert len([t for t in tagged if "kv_cache_past_" in t]) == 4  # 2 layers' K and V caches


@pytest.mark.slow
def test_modified_is_true_exactly_when_the_graph_changed(edge):
    result = PassManager(q.passes(), verify="off").run(edge.fresh())
    modified = {r.name: r.modified for r in result.records}
    # nothing to do on a Llama: no avg_pool1d, no acos, no conv1d, ...
    assert not modified["qnn-annotate-avg-pool1d"]
    assert not modified["qnn-decompose-acos"]
    assert not modified["qnn-canonicalize-conv"]
    # the graph changed: ops (fold-qdq: 539 q/dq ops go) or node metadata (annotations)
    assert modified["qnn-fold-qdq"] and modified["qnn-annotate-quant-attrs"]
    assert modified["qnn-convert-bmm-to-matmul"] and modified["qnn-i64-to-i32"]
    records = {r.name: r for r in result.records}
    assert records["qnn-fold-qdq"].ops_after < records["qnn-fold-qdq"].ops_before / 2
    # a second run of a pass that changed the graph changes nothing
    again = PassManager([q.PASSES["FoldQDQ"]()], verify="off").run(result.program)
    assert not again.records[0].modified


@pytest.mark.slow
def test_kept_passes_leave_the_outputs_equal(edge):
    """What --no-delegate keeps computes exactly what the edge program computed before."""
    program = edge.fresh()
    before = run_method(program.exported_programs()["forward"], edge.model.steps)
    kept = [p for p in q.passes() if p.contract.delegation is None]
    after = PassManager(kept, verify="each").run(program).program
    got = run_method(after.exported_programs()["forward"], edge.model.steps)
    for step, (g, b) in enumerate(zip(got, before, strict=True)):
        torch.testing.assert_close(g, b, rtol=0, atol=0, msg=lambda m, s=step: f"step {s}: {m}")


@pytest.mark.slow
def test_matmul_and_fold_qdq_are_what_no_delegate_avoids(edge):
    """The reasons two passes are QNN-only, on the real graph."""
    from executorch.exir.dialects._ops import ops as exir_ops

    from pteflow.ir.views import op_histogram

    before = op_histogram(edge.program)
    after = op_histogram(PassManager(q.passes(), verify="off").run(edge.fresh()).program)
    quantize = exir_ops.edge.quantized_decomposed.quantize_per_tensor.default
    assert before[quantize] > 200 and after[quantize] == 0  # folded into node metadata
    matmul = exir_ops.edge.aten.matmul.default
    assert before[matmul] == 0 and after[matmul] == 4  # no portable kernel for it


@pytest.mark.slow
def test_input_program_left_intact_and_copied_once_per_run(edge):
    program = edge.fresh()
    code = program.exported_programs()["forward"].graph_module.code
    first = q.PASSES["RemoveRedundancy"]().apply(program).program
    second = q.PASSES["I64toI32"]().apply(first).program
    assert program.exported_programs()["forward"].graph_module.code == code
    assert first.artifact is not program.artifact  # the first QNN pass copies ...
    assert second.artifact is first.artifact  # ... the next ones edit that copy
    assert OWNED not in program.metadata
