"""The benchmark's program comparison: two .pte files that differ only in what nothing
runs (XNNPACK debug handles, requires_grad flags) are the same program; a changed weight,
node or method is not."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest

from benchmarks import pte_compare
from pteflow.driver.models import from_callable

from ..driver._helpers import MODELS


@pytest.fixture(scope="module")
def mlp_pte(tmp_path_factory):
    import pteflow

    model = from_callable(f"{MODELS}:mlp")
    pte = tmp_path_factory.mktemp("cmp") / "mlp.pte"
    passes = f"export,to-edge,partition-xnnpack,to-executorch,emit{{path={pte}}}"
    pteflow.compile(model.program, passes=passes, cache=False, verify=False)
    return pte


def _rewritten(pte: Path, out: Path, change, weights=lambda buffers: None) -> Path:
    """``pte`` serialized again with ``change(graph_json, constants)`` applied to every
    XNNPACK payload, ``weights(buffers)`` to its named data, and the values'
    requires_grad flags flipped."""
    import dataclasses

    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import (
        CONSTANT_TENSOR_ALIGNMENT,
        XNNHeader,
        _aligned_size,
        _pad_to,
    )
    from executorch.exir._serialize._program import deserialize_pte_binary, serialize_pte_binary

    pte_file = deserialize_pte_binary(pte.read_bytes())
    program = pte_file.program
    for i, data in enumerate(program.backend_delegate_data):
        graph, constants = pte_compare.xnnpack_graph(bytes(data.data))
        constants = change(graph, constants)
        with tempfile.TemporaryDirectory() as tmp:
            text = json.dumps(graph).replace("Infinity", "inf").replace("NaN", "nan")
            (Path(tmp) / "graph.json").write_text(text)
            cmd = [pte_compare._flatc(), "--binary", "-o", tmp, pte_compare._schema()]
            subprocess.run([*cmd, str(Path(tmp) / "graph.json")], check=True)
            flatbuffer = (Path(tmp) / "graph.bin").read_bytes()
        head = _aligned_size(XNNHeader.EXPECTED_LENGTH, CONSTANT_TENSOR_ALIGNMENT)
        body = _aligned_size(len(flatbuffer), CONSTANT_TENSOR_ALIGNMENT)
        header = XNNHeader(head, len(flatbuffer), head + body, len(constants)).to_bytes()
        payload = _pad_to(header, head) + _pad_to(flatbuffer, body) + constants
        program.backend_delegate_data[i] = dataclasses.replace(data, data=payload)
    if pte_file.named_data is not None:
        weights(pte_file.named_data.buffers)
    for plan in program.execution_plan:
        for value in plan.values:
            if hasattr(value.val, "requires_grad"):
                value.val = dataclasses.replace(
                    value.val, requires_grad=not value.val.requires_grad
                )
    out.write_bytes(bytes(serialize_pte_binary(pte_file, extract_delegate_segments=True)))
    return out


def test_debug_handles_and_grad_flags_are_not_the_program(mlp_pte, tmp_path):
    def renumber(graph, constants):
        nodes = graph["xnodes"]
        assert nodes and all("debug_handle" in n for n in nodes)
        for n in nodes:
            n["debug_handle"] += 100
        return constants

    other = _rewritten(mlp_pte, tmp_path / "renumbered.pte", renumber)
    assert other.read_bytes() != mlp_pte.read_bytes()
    assert pte_compare.program_difference(mlp_pte, other) is None
    assert pte_compare.program_difference(mlp_pte, mlp_pte) is None


def test_a_changed_node_or_weight_is_another_program(mlp_pte, tmp_path):
    def clamp(graph, constants):
        graph["xnodes"][0]["output_min_max"] = {"output_min": -1.0, "output_max": 1.0}
        return constants

    other = _rewritten(mlp_pte, tmp_path / "clamped.pte", clamp)
    assert pte_compare.program_difference(mlp_pte, other) == (
        "method 'forward': delegate 0 (XnnpackBackend) differs in its payload"
    )

    def flip_a_weight_byte(buffers):
        buffers[0] = bytes([buffers[0][0] ^ 1]) + bytes(buffers[0][1:])

    def same(graph, constants):
        return constants

    other = _rewritten(mlp_pte, tmp_path / "weight.pte", same, flip_a_weight_byte)
    assert pte_compare.program_difference(mlp_pte, other) == "the weights (named data) differ"


def test_a_portable_program_compares_too(mlp_pte, tmp_path):
    """No delegates and no named data (its weights are in the constant segment)."""
    import pteflow

    pte = tmp_path / "portable.pte"
    program = from_callable(f"{MODELS}:mlp").program
    passes = f"export,to-edge,to-executorch,emit{{path={pte}}}"
    pteflow.compile(program, passes=passes, cache=False, verify=False)
    flipped = _rewritten(pte, tmp_path / "flipped.pte", lambda graph, constants: constants)
    assert flipped.read_bytes() != pte.read_bytes()
    assert pte_compare.program_difference(pte, flipped) is None
    assert pte_compare.program_difference(pte, mlp_pte) == "the weights (named data) differ"


def test_a_row_names_the_reference_runs_it_matches(mlp_pte, tmp_path):
    """export_llama's runs need not write the same program: against a median run that
    differs, the row says how many of the others pteflow's matches."""

    def same(graph, constants):
        return constants

    def flip_a_weight_byte(buffers):
        buffers[0] = bytes([buffers[0][0] ^ 1]) + bytes(buffers[0][1:])

    twin = _rewritten(mlp_pte, tmp_path / "twin.pte", same)
    odd = _rewritten(mlp_pte, tmp_path / "odd.pte", same, flip_a_weight_byte)
    weights = "the weights (named data) differ"
    assert pte_compare.against_reference(mlp_pte, twin, [odd]) == (None, "the same program")
    assert pte_compare.against_reference(mlp_pte, odd, [twin, odd]) == (
        weights,
        f"the same program as 1 of export_llama's 3 runs (its median run's: {weights})",
    )
    assert pte_compare.against_reference(mlp_pte, odd, [odd]) == (weights, f"program: {weights}")
