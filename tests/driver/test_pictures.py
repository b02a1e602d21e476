"""``driver plan --graph`` and ``driver run --track-numerics --plot``: real image files."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ._helpers import MODELS, WRONG, run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plan_graph_svg_has_every_pass_and_the_level_bands(tmp_path, capsys):
    svg = tmp_path / "plan.svg"
    code, out, err = run(capsys, "plan", "--pipeline", "xnnpack_default", "--graph", str(svg))
    assert code == 0, err
    assert f"graph: {svg}" in out
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    text = " ".join(t for el in root.iter() if el.tag.endswith("text") for t in el.itertext())
    for name in ("export", "to-edge", "partition-xnnpack-dq", "to-executorch", "emit"):
        assert name in text, name
    for level in ("eager", "aten", "edge", "executorch"):
        assert level in text.split(), level
    assert "provides" in text or "level order" in text  # reasons on the edges


def test_plan_graph_png_and_dot(tmp_path, capsys):
    png, dot = tmp_path / "plan.png", tmp_path / "plan.dot"
    assert run(capsys, "plan", "--pipeline", "portable_default", "--graph", str(png))[0] == 0
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert run(capsys, "plan", "--pipeline", "portable_default", "--graph", str(dot))[0] == 0
    import pydot

    (graph,) = pydot.graph_from_dot_file(str(dot))
    labels = [n.get_label() for n in graph.get_nodes() if n.get_label()]
    assert any("to-executorch" in label for label in labels)
    assert all(e.get_label() for e in graph.get_edges())  # every edge says why


def test_graph_suffix_refused_before_work(tmp_path, capsys):
    code, _, err = run(capsys, "plan", "--pipeline", "xnnpack_default", "--graph", "p.gif")
    assert code == 2 and "use one of .svg, .png, .dot" in err and err.count("\n") == 1
    code, _, err = run(capsys, "run", "--model", f"{MODELS}:mlp", "--plot", "x.png")
    assert code == 2 and "--plot draws --track-numerics" in err
    code, out, err = run(
        capsys, "run", "--model", f"{MODELS}:mlp", "--passes", "export", "--etrecord", "x.et"
    )
    assert code == 2 and "--etrecord needs a run that converts an edge program" in err
    assert "model:" not in out  # refused before the model is loaded


def test_numerics_plot_is_a_png(tmp_path, capsys):
    plot = tmp_path / "drift.png"
    code, out, err = run(
        capsys,
        "run",
        "--model",
        f"{MODELS}:mlp",
        "--passes",
        "export,flip-sign,noop-aten",
        "--plugin",
        WRONG,
        "--report",
        str(tmp_path / "r.json"),
        "--track-numerics",
        "--plot",
        str(plot),
    )
    assert code == 0, err
    assert f"numerics plot: {plot}" in out
    data = plot.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
    import matplotlib.image

    height, width = matplotlib.image.imread(str(plot)).shape[:2]
    assert width > 400 and height > 300


@pytest.mark.slow
def test_etrecord_loads_in_the_inspector_with_an_etdump(tmp_path, capsys):
    """--etrecord writes what executorch.devtools.Inspector joins with the runtime's ETDump."""
    pte, etrecord = tmp_path / "m.pte", tmp_path / "m.etrecord"
    passes = "export,to-edge,to-executorch,emit"  # portable: every op is an event
    code, out, err = run(
        capsys,
        "run",
        "--model",
        f"{MODELS}:mlp",
        "--passes",
        passes,
        "-o",
        str(pte),
        "--etrecord",
        str(etrecord),
    )
    assert code == 0, err
    assert "cache: not used (--etrecord must see every pass run)" in out
    import torch
    from executorch.devtools import Inspector
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(pte, enable_etdump=True, debug_buffer_size=1 << 20)
    program.load_method("forward").execute([torch.randn(4, 16)])
    etdump, debug = tmp_path / "m.etdp", tmp_path / "m.debug.bin"
    program.write_etdump_result_to_file(str(etdump), str(debug))
    inspector = Inspector(
        etdump_path=str(etdump), etrecord=str(etrecord), debug_buffer_path=str(debug)
    )
    frame = inspector.to_dataframe()
    # the runtime's events are matched, through the record's debug handles, to the edge
    # graph's ops and to the model's source lines
    ops = {op for types in frame["op_types"] for op in (types or [])}
    assert {"aten.addmm.default", "aten.relu.default"} <= ops
    traces = [t for traces in frame["stack_traces"] for t in (traces or {}).values()]
    assert any("models.py" in t for t in traces)
