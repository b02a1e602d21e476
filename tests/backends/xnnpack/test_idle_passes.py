"""XNNPACK's preprocess passes skip a partition they have nothing to do on
(``backends/xnnpack/idle_passes.py``): the programs are byte for byte upstream's, models
holding what each pass acts on run it, a partition of linears re-traces only in the two
passes that work on every graph and builds no pattern, and upstream's passes are their own
again afterwards."""

from __future__ import annotations

import collections
import importlib

import pytest
import torch
from executorch.backends.xnnpack.partition.graphs import bilinear_2d, sdpa
from executorch.exir.pass_base import _ExportPassBase

from pteflow.backends.xnnpack import idle_passes
from pteflow.backends.xnnpack.partition_xnnpack import PartitionXnnpackPass
from pteflow.driver.cli import main
from pteflow.ir import Program
from pteflow.ir.serialized import pte_bytes
from pteflow.passes import PassManager
from pteflow.passes.convert.export import TorchExportPass
from pteflow.passes.convert.to_edge import ToEdgePass
from pteflow.passes.convert.to_executorch import ToExecutorchPass

BUILT = {"bilinear_2d": bilinear_2d._get_bilinear_2d_graphs, "sdpa": sdpa.get_graphs}
PATTERN_PASSES = {"bilinear_2d": "ConvertToUpsampleBilinear2d", "sdpa": "ConvertToSDPAPass"}


class Linears(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(16, 32), torch.nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


class Convolutions(torch.nn.Module):
    """A 1-d convolution, batch norms after a convolution and after none, an activation
    to fuse, a concatenation of six, a max over a dim and a max pool."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.bn1 = torch.nn.Conv1d(4, 8, 3), torch.nn.BatchNorm1d(8)
        self.c2, self.bn2 = torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.BatchNorm2d(8)
        self.bn3 = torch.nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.relu(self.bn1(self.c1(x))).unsqueeze(-1).expand(-1, -1, -1, 4)
        z = torch.nn.functional.max_pool2d(self.bn2(self.c2(y)), 2)
        w = self.bn3(z + 1.0)
        peak = torch.max(w, dim=3, keepdim=True)[0]
        return torch.cat([w, w * 2, w + 1, w - 1, w * 3, w + 2], dim=1), peak


class Attention(torch.nn.Module):
    """A softmax over scores and a bilinear upsample: both pattern passes' ops."""

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        scores = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        return torch.nn.functional.interpolate(scores, scale_factor=2, mode="bilinear")


class ChannelsLast(torch.nn.Module):
    """A dim-order copy (edge keeps dim order) and a dtype round trip."""

    def __init__(self) -> None:
        super().__init__()
        self.c = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c(x.to(memory_format=torch.channels_last))
        return y * 2 + y.to(torch.float16).to(torch.float32)


MODELS = {
    "linears": (Linears, lambda: (torch.randn(2, 16),), {}),
    "convolutions": (Convolutions, lambda: (torch.randn(1, 4, 10),), {"skip_dim_order": True}),
    "attention": (Attention, lambda: (torch.randn(1, 2, 4, 8), torch.randn(1, 2, 4, 8)), {}),
    "channels-last": (ChannelsLast, lambda: (torch.randn(1, 3, 8, 8),), {}),
}

#: the passes some model above gives work (the others' nodes do not reach an XNNPACK
#: partition: constants are lifted to inputs, a PReLU stays ``prelu``, and only a
#: quantizer's annotations carry ``custom`` metadata)
EXERCISED = {
    "DimOrderOpsRevertPass", "ConvertToUpsampleBilinear2d", "ConvertToSDPAPass",
    "FuseBatchNormPass", "DecomposeBatchNorm", "FuseActivationPass", "DecomposeConcatenate",
    "RemoveGetItemPass", "Conv1dUnsqueezePass", "RemoveRedundantCopyPass",
}  # fmt: skip


@pytest.fixture
def upstream_as_is():
    """The skip off, as on an ExecuTorch release it was not checked against (``undo()``
    turns it on again; a patch of its own, so that undoing it leaves the others)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(idle_passes, "CHECKED_RELEASE", "not this one")
        yield patch


@pytest.fixture
def asked(monkeypatch):
    """Which passes were asked whether a graph gives them work, and the answers."""
    answers: collections.Counter = collections.Counter()
    table = idle_passes.work

    def recording() -> dict:
        def ask(name, has_work):
            def answer(graph) -> bool:
                result = has_work(graph)
                answers[name, result] += 1
                return result

            return answer

        return {key: ask(key[1], has_work) for key, has_work in table().items()}

    monkeypatch.setattr(idle_passes, "work", recording)
    return answers


@pytest.fixture
def retraces(monkeypatch):
    """How many times each pass class re-traced a graph (``ExportPass.call``)."""
    count: collections.Counter = collections.Counter()
    original = _ExportPassBase.call

    def counted(self, graph_module):
        count[type(self).__name__] += 1
        return original(self, graph_module)

    monkeypatch.setattr(_ExportPassBase, "call", counted)
    return count


def _pte(name: str) -> tuple[bytes, int]:
    """The program lowered to XNNPACK, and how many partitions it has."""
    for build in BUILT.values():
        build.cache_clear()
    module, inputs, edge = MODELS[name]
    torch.manual_seed(0)
    eager = Program.eager(module().eval(), inputs())
    passes = [TorchExportPass(), ToEdgePass(**edge), PartitionXnnpackPass(), ToExecutorchPass()]
    artifact = PassManager(passes, verify="off").run(eager).program.artifact
    graph = artifact.exported_program().graph
    calls = sum(n.target == torch.ops.higher_order.executorch_call_delegate for n in graph.nodes)
    return pte_bytes(artifact), calls


def _built() -> set[str]:
    return {name for name, build in BUILT.items() if build.cache_info().currsize}


def _calls() -> dict[str, object]:
    return {
        name: vars(getattr(importlib.import_module(module), name)).get("call")
        for module, name in idle_passes.work()
    }


def test_every_upstream_pattern_gives_its_pass_work():
    """What makes skipping the pattern passes exact: a match needs each pattern op in
    the graph, and every pattern holds the op their test asks for."""
    assert idle_passes._checked_release()  # the pinned release: the skip is on here
    table = {name: has_work for (_module, name), has_work in idle_passes.work().items()}
    for graphs, patterns in {
        "bilinear_2d": bilinear_2d.get_graphs(),
        "sdpa": sdpa.get_graphs(),
    }.items():
        assert patterns, graphs
        for gm in patterns:
            assert table[PATTERN_PASSES[graphs]](gm.graph), graphs


def test_a_partition_of_linears_retraces_only_where_a_pass_works(upstream_as_is, retraces):
    as_is, partitions = _pte("linears")
    assert _built() == {"bilinear_2d", "sdpa"}  # upstream builds both, for nothing
    upstream = {name for (_module, name) in idle_passes.work()} & set(retraces)
    assert len(upstream) >= 10  # the idle ones re-trace every partition
    upstream_as_is.undo()
    originals = _calls()
    retraces.clear()
    assert _pte("linears") == (as_is, partitions)
    assert _built() == set()
    # only the two passes that work on every graph re-trace the partition
    xnnpack = {"ConvertToLinearPass": partitions, "ChannelsLastTaggedReshapePass": partitions}
    assert {name: retraces[name] for name in xnnpack} == xnnpack
    assert not {name for (_module, name) in idle_passes.work()} & set(retraces)
    assert _calls() == originals  # upstream's passes are their own again (or inherit)


@pytest.mark.parametrize("name", ["convolutions", "attention", "channels-last"])
def test_a_model_with_what_the_passes_act_on_lowers_to_the_same_bytes(name, upstream_as_is, asked):
    as_is = _pte(name)
    upstream_as_is.undo()
    assert _pte(name) == as_is
    worked = {pass_name for (pass_name, has_work), n in asked.items() if has_work and n}
    assert worked, name


def test_the_models_give_every_exercised_pass_work(asked):
    for name in MODELS:
        _pte(name)
        # patterns are built for the partition holding a softmax and an upsample only
        assert _built() == ({"bilinear_2d", "sdpa"} if name == "attention" else set()), name
    worked = {pass_name for (pass_name, has_work), n in asked.items() if has_work and n}
    assert worked == EXERCISED


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", ["xnnpack_8da4w", "xnnpack_pt2e"])
def test_quantized_llama_pipelines_write_the_same_bytes(pipeline, tmp_path, upstream_as_is):
    """The tiny Llama's quantized partitions (dynamic and static q/dq around linears)."""
    args = ["run", "--pipeline", pipeline, "--no-verify", "--no-cache", "-o"]
    assert main([*args, str(tmp_path / "as-is.pte")]) == 0
    upstream_as_is.undo()
    assert main([*args, str(tmp_path / "skipped.pte")]) == 0
    assert (tmp_path / "as-is.pte").read_bytes() == (tmp_path / "skipped.pte").read_bytes()
