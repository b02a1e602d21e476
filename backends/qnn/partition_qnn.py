from __future__ import annotations

from typing import Any

import attrs

from pteflow.ir import Program, facts, views
from pteflow.ir.errors import ModelError, UnavailableError
from pteflow.passes.base import Pass, PassContext, PassInfo, PassResult
from pteflow.passes.partition.arbitration import record as record_claims
from pteflow.passes.partition.lowering import is_bool
from pteflow.passes.partition.partitioner import partitioner_info
from pteflow.passes.policy import Delegating

from . import device, sdk

DELEGATED_QNN = facts.delegated("QnnBackend", "qnn")

#: export_llama's get_qnn_partitioner keeps its sharding marker op on the CPU.
SKIP_OPS = frozenset({"llama.fallback.default"})


@attrs.frozen
class PartitionQnnPass(Pass, Delegating):
    """Lower what QNN HTP supports to the Qualcomm delegate (needs the Qualcomm SDK).

    Requires: an edge program after QNN's edge passes (they declare ``before`` this pass),
    with static shapes; quantized.pt2e unless ``use_fp16`` (HTP's quantized precision needs
    a quantized graph). Provides: delegated.qnn.

    Wraps export_llama's ``get_qnn_partitioner``: ``QnnPartitioner`` with compile specs for
    ``soc`` (default SM8650, export_llama's ``--soc_model`` default) and the HTP backend
    (fp16 precision when ``use_fp16``, else quantized), ``llama.fallback`` kept on the CPU,
    mutable buffers (the KV caches) not delegated, through ``EdgeProgramManager.to_backend``
    inside a ``QnnManagerContext`` (one QnnManager per lowering, as
    ``to_edge_transform_and_lower_to_qnn`` does). Unavailable without ``QNN_SDK_ROOT`` and a
    loadable ``libQnnHtp.so``: the manager refuses the pipeline before any work, and
    ExecuTorch's SDK download is never reached. When the SDK's HTP library loads but the
    QnnManager cannot create the HTP device (an SDK that is not the QNN version this
    ExecuTorch was built for), it raises UnavailableError with QNN's own error line.

    The partitioner is deliberately not offered to to-edge (no ``make_partitioner``):
    export_llama's QNN flow runs a plain ``to_edge`` and then QNN's edge passes; with QNN's
    skip-decomposition table applied at to-edge, ``ConvertBmmToMatmul`` fails.
    """

    info = partitioner_info("partition-qnn", DELEGATED_QNN)
    delegation = "qnn"
    soc: str = attrs.field(default=sdk.DEFAULT_SOC, validator=sdk.check_soc)
    use_fp16: bool = attrs.field(default=False, validator=is_bool)
    skip_mutable_buffer: bool = attrs.field(default=True, validator=is_bool)

    @property
    def contract(self) -> PassInfo:
        if self.use_fp16:
            return self.info
        return attrs.evolve(self.info, requires={facts.QUANTIZED_PT2E})

    def unavailable_reason(self) -> str | None:
        return sdk.unavailable_reason()

    def compile_specs(self) -> list[Any]:
        """The QNN compile specs (HTP backend, this SoC); needs no SDK to build."""
        sdk.disable_sdk_download()  # HTP specs never set up the SDK; this keeps it so
        from executorch.backends.qualcomm.serialization.qc_schema import QcomChipset
        from executorch.backends.qualcomm.utils.utils import (
            generate_htp_compiler_spec,
            generate_qnn_executorch_compiler_spec,
        )

        return generate_qnn_executorch_compiler_spec(
            soc_model=getattr(QcomChipset, self.soc),
            backend_options=generate_htp_compiler_spec(use_fp16=self.use_fp16),
            debug=False,
            saver=False,
        )

    def qnn_partitioner(self) -> Any:
        """The ``QnnPartitioner`` export_llama builds (constructing it needs no SDK)."""
        from executorch.backends.qualcomm.partition.qnn_partitioner import QnnPartitioner

        return QnnPartitioner(
            self.compile_specs(),
            skip_node_id_set=set(),
            skip_node_op_set=set(SKIP_OPS),
            skip_mutable_buffer=self.skip_mutable_buffer,
        )

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import contextlib

        import torch
        from executorch.backends.qualcomm.utils.qnn_manager_lifecycle import QnnManagerContext

        dynamic = sorted(m for m, shapes in program.dynamic_shapes.items() if shapes)
        if dynamic:
            raise ModelError(
                f"{self.name}: method(s) {', '.join(dynamic)} have dynamic shapes, which QNN "
                "does not lower; build the model with enable_dynamic_shape=False"
            )
        manager = program.artifact
        config = manager.compile_config
        before = len(views.delegation_summary(program))
        specs = self.compile_specs()
        sdk.load_htp_library()  # after torch; ExecuTorch opens it by file name
        with torch.no_grad(), contextlib.ExitStack() as stack:
            with device.native_output() as log:
                try:
                    stack.enter_context(QnnManagerContext({m: specs for m in manager.methods}))
                    failure = None
                except RuntimeError as e:
                    failure = e
            if failure is not None:
                error = UnavailableError(device.failure_message(self.soc, log.text, failure))
                error.add_note(f"QNN's log while creating the device:\n{log.text}")  # --debug
                raise error from failure
            log.replay()
            lowered = manager.to_backend(self.qnn_partitioner())
        lowered.compile_config = config  # to_backend resets it (see passes/partition/lowering.py)
        out = program.evolve(artifact=lowered)
        out = out.evolve(metadata=record_claims(self.name, program, out))
        modified = len(views.delegation_summary(out)) != before
        return PassResult(
            out if modified else program,
            modified,
            withheld=frozenset() if modified else self.contract.provides,
        )
