"""A ``Tester`` for ExecuTorch's backend test suite whose stages run pteflow.

``executorch.backends.test.suite.runner.run_test`` drives a flow's Tester through its
stages (quantize, export, to_edge_transform_and_lower, to_executorch, serialize), then
runs the serialized ``.pte`` in ExecuTorch's runtime and compares it with the export
stage's program (``Tester.run_method_and_compare_outputs``). This Tester keeps that
contract and the suite's checks (inherited), but every stage is pteflow's:

    quantize    pteflow.compile((model, inputs), passes="export,pt2e-prepare{...},
                pt2e-calibrate,pt2e-convert"): pteflow's pt2e passes on the exported graph
    export      pteflow.compile((model, inputs[, dynamic_shapes]), passes=EXPORT), or the
                quantize stage's program; its ExportedProgram is the suite's reference
    lower       PassManager: to-edge + the flow's partition passes (to-edge consults them)
    to_executorch  PassManager: to-executorch
    serialize   PassManager: emit (pteflow's load-and-run check before the file exists);
                the suite runs the bytes emit wrote

Stages hand each other the pteflow ``Program`` (with its facts), not only the upstream
artifact. The lowering stage's artifact is a read-only view with what ``run_test`` reads
of an ``EdgeProgramManager`` (``_edge_programs``, ``_etrecord.edge_dialect_program`` = the
edge program before partitioning, for its op counts and skip checks).
"""

from __future__ import annotations

import copy
import functools
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from executorch.backends.test.harness import Tester
from executorch.backends.test.harness.stages import Serialize, Stage, StageType

import pteflow
from pteflow.ir import Program
from pteflow.passes import PassManager
from pteflow.passes.manager import PassObserver

#: what pteflow did differently from upstream in the current test (the plugin reports it)
NOTES: list[str] = []

#: export as upstream's flows do (torch.export.export(strict=True), no decompositions)
EXPORT = "export{strict=true,functionalize=false}"

#: to-edge as upstream's portable and XNNPACK flows configure it
#: (``EdgeCompileConfig(_check_ir_validity=False)``, dim order kept)
TO_EDGE = "to-edge{check_ir_validity=false}"


def run_passes(
    program: Program, specs: list[str], *, capture: str | None = None, plugins: tuple = ()
) -> tuple[Program, Any]:
    """Run pteflow's passes ``specs`` on ``program`` with the PassManager (default checks).

    ``plugins``: modules or files with more passes (``driver --plugin``).
    Returns the final program and, when ``capture`` names a pass, a deep copy of the
    exported program right after it (``None`` otherwise).
    """
    from pteflow.driver.spec import build_passes
    from pteflow.passes.spec import parse_pass_list

    registry, passes = build_passes(parse_pass_list(",".join(specs)), plugins)
    manager = PassManager(passes, registry=registry)
    observer = _Capture(capture)
    result = manager.run(program, observers=[observer] if capture else [])
    return result.program, observer.program


class _Capture(PassObserver):
    """Keeps a copy of the exported program after one named pass."""

    def __init__(self, name: str | None):
        self.name = name
        self.program: Any = None

    def after(self, rank: int, pass_: Any, program_out: Program, record: Any) -> None:
        if pass_.name == self.name:
            self.program = copy.deepcopy(program_out.artifact.exported_program())


def _compile_eager(module: torch.nn.Module, inputs: Any, dynamic_shapes: Any, passes: list[str]):
    """pteflow.compile on the suite's model and example inputs: EAGER -> ATEN Program."""
    made = (
        (module, tuple(inputs))
        if dynamic_shapes is None
        else (module, tuple(inputs), dynamic_shapes)
    )
    with tempfile.TemporaryDirectory(prefix="pteflow-conformance-") as tmp:
        result = pteflow.compile(
            made,
            passes=passes,
            cache=False,
            verify=False,
            debug=pteflow.DebugOptions(repro_dir=str(Path(tmp) / "repro")),
        )
    return result


class PteflowStage(Stage):
    """A stage that runs pteflow; ``previous`` is the stage before it (set by the tester)."""

    previous: PteflowStage | None = None
    program: Program | None = None

    def previous_program(self) -> Program:
        if self.previous is None or self.previous.program is None:
            raise RuntimeError(f"{type(self).__name__} needs a pteflow stage before it")
        return self.previous.program


class PteflowQuantize(PteflowStage):
    """pteflow's pt2e passes with an XNNPACK quantizer (``pt2e-prepare{quantizer=...}``).

    pt2e-prepare refuses a model its quantizer finds nothing in (an add, a pooling: the
    dynamic quantizer takes linears only), where upstream's quantize stage leaves such a
    model as it is; the stage asks for upstream's behaviour (``allow_unquantized=true``)
    and notes every method left in float (the report lists every such test).
    """

    def __init__(self, quantizer: str):
        self.quantizer = quantizer

    def stage_type(self) -> StageType:
        return StageType.QUANTIZE

    def run(self, artifact: torch.nn.Module, inputs: Any = None) -> None:
        passes = [
            EXPORT,
            f"pt2e-prepare{{quantizer={self.quantizer},allow_unquantized=true}}",
            "pt2e-calibrate",
            "pt2e-convert",
        ]
        result = _compile_eager(artifact, inputs, None, passes)
        self.program = result.program
        said = next(r.log for r in result.records if r.name == "pt2e-prepare")
        left = [line for line in said if "left unquantized" in line]
        if left:
            NOTES.append(f"pteflow's {self.quantizer} quantizer found nothing to quantize "
                         f"({'; '.join(left)}); compiled unquantized")  # fmt: skip

    @property
    def artifact(self) -> Any:
        return self.program.exported_programs()["forward"]

    @property
    def graph_module(self) -> Any:
        return self.artifact.graph_module

    def run_artifact(self, inputs: Any) -> Any:
        return self.artifact.module()(*inputs)


class PteflowExport(PteflowStage):
    """pteflow's export pass; after a quantize stage, its (already exported) program."""

    def __init__(self, dynamic_shapes: Any = None):
        self.dynamic_shapes = dynamic_shapes
        self.reference: Any = None

    def stage_type(self) -> StageType:
        return StageType.EXPORT

    def run(self, artifact: Any, inputs: Any = None) -> None:
        if isinstance(self.previous, PteflowQuantize):
            self.program = self.previous_program()
        else:
            self.program = _compile_eager(artifact, inputs, self.dynamic_shapes, [EXPORT]).program
        # the suite's reference: what pteflow was given to lower, untouched by later passes
        self.reference = copy.deepcopy(self.program.exported_programs()["forward"])

    @property
    def artifact(self) -> Any:
        return self.reference

    @property
    def graph_module(self) -> Any:
        return self.reference.graph_module


class PteflowLower(PteflowStage):
    """to-edge and the flow's partition passes, in one PassManager run."""

    def __init__(self, partition: tuple[str, ...] = (), plugins: tuple[str, ...] = ()):
        self.partition, self.plugins = partition, plugins
        self.edge_before_partition: Any = None

    def stage_type(self) -> StageType:
        return StageType.TO_EDGE_TRANSFORM_AND_LOWER

    def run(self, artifact: Any, inputs: Any = None, generate_etrecord: bool = False) -> None:
        self.program, self.edge_before_partition = run_passes(
            self.previous_program(),
            [TO_EDGE, *self.partition],
            capture="to-edge",
            plugins=self.plugins,
        )

    @property
    def artifact(self) -> Any:
        manager = self.program.artifact
        return SimpleNamespace(
            _edge_programs=manager._edge_programs,
            _etrecord=SimpleNamespace(edge_dialect_program=self.edge_before_partition),
            exported_program=manager.exported_program,
        )

    @property
    def graph_module(self) -> Any:
        return self.program.artifact.exported_program().graph_module

    def run_artifact(self, inputs: Any) -> Any:
        return self.program.artifact.exported_program().module()(*inputs)


class PteflowToExecutorch(PteflowStage):
    """pteflow's to-executorch pass (its defaults are upstream's test config)."""

    def stage_type(self) -> StageType:
        return StageType.TO_EXECUTORCH

    def run(self, artifact: Any, inputs: Any = None) -> None:
        self.program, _ = run_passes(self.previous_program(), ["to-executorch"])

    @property
    def artifact(self) -> Any:
        return self.program.artifact

    @property
    def graph_module(self) -> Any:
        return self.program.artifact.exported_program().graph_module


class PteflowSerialize(PteflowStage, Serialize):
    """pteflow's emit pass; the suite loads and runs the bytes it wrote (inherited)."""

    def __init__(self) -> None:
        Serialize.__init__(self)

    def run(self, artifact: Any, inputs: Any = None) -> None:
        with tempfile.TemporaryDirectory(prefix="pteflow-conformance-") as tmp:
            path = Path(tmp) / "model.pte"
            self.program, _ = run_passes(self.previous_program(), [f'emit{{path="{path}"}}'])
            self.buffer = path.read_bytes()


class PteflowTester(Tester):
    """The harness Tester with pteflow stages; the suite's comparison is inherited."""

    __test__ = False

    def __init__(
        self,
        module: torch.nn.Module,
        example_inputs: Any,
        dynamic_shapes: Any = None,
        *,
        partition: tuple[str, ...] = (),
        plugins: tuple[str, ...] = (),
    ):
        """``partition``: the pass specs the lowering stage runs after to-edge (the flow's
        partitioners); ``plugins``: where passes pteflow does not ship are (tests)."""
        stages = {
            StageType.EXPORT: PteflowExport,
            StageType.TO_EDGE_TRANSFORM_AND_LOWER: functools.partial(
                PteflowLower, partition, plugins
            ),
            StageType.TO_EXECUTORCH: PteflowToExecutorch,
            StageType.SERIALIZE: PteflowSerialize,
        }
        super().__init__(
            module, example_inputs, stage_classes=stages, dynamic_shapes=dynamic_shapes
        )

    def _run_stage(self, stage_instance: Any, inputs: Any = None, *args: Any, **kwargs: Any):
        if not isinstance(stage_instance, PteflowStage):
            raise TypeError(f"{type(stage_instance).__name__} is not a pteflow stage")
        stage_instance.previous = self.stages[self.cur] if self.cur else None
        return super()._run_stage(stage_instance, inputs, *args, **kwargs)
