from __future__ import annotations

import attrs

from pteflow.ir import Program, facts
from pteflow.ir.errors import UnavailableError
from pteflow.passes.base import Pass, PassContext, PassResult
from pteflow.passes.partition.availability import missing_modules
from pteflow.passes.partition.partitioner import partitioner_info
from pteflow.passes.policy import Delegating

MPS_MODULE = "executorch.backends.apple.mps"
DELEGATED_MPS = facts.delegated("MPSBackend", "mps")


def mps_missing() -> str | None:
    """Why MPS lowering cannot run here: ExecuTorch 1.5.1 ships no MPS backend."""
    if not missing_modules(f"{MPS_MODULE}.partition"):
        return None  # pragma: no cover - no executorch release pteflow supports has it
    from importlib.metadata import PackageNotFoundError, version

    try:
        et = f"executorch {version('executorch')}"
    except PackageNotFoundError:
        et = "this executorch"
    return (
        f"{et} has no MPS backend ({MPS_MODULE} is missing); use coreml_default for Apple GPUs/ANE"
    )


@attrs.frozen
class PartitionMpsPass(Pass, Delegating):
    """Lower to Apple's Metal Performance Shaders delegate (not in ExecuTorch 1.5.1).

    Requires: an edge program. Provides: delegated.mps.
    ExecuTorch removed ``executorch.backends.apple.mps``; this pass exists so that
    ``mps_default`` fails before any work with that reason and the alternative (CoreML,
    which targets the Apple GPU and Neural Engine), instead of an import error mid-run.
    """

    info = partitioner_info("partition-mps", DELEGATED_MPS)
    delegation = "mps"

    def unavailable_reason(self) -> str | None:
        return mps_missing()

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        raise UnavailableError(
            f"{self.name}: {mps_missing() or 'pteflow does not wrap an MPS partitioner'}"
        )
