"""The shape every partition pass shares, so a backend's partitioner is a short declaration.

A partition pass reads and writes EDGE programs, provides its backend's ``delegated.*``
facts, keeps its listed place among the other partitioners (``ordered``: the earlier one
gets first pick) and is dropped by ``--no-delegate`` (``policy.Delegating``). What differs
between backends is data: the name, the facts, the backend, the options, and how the
upstream partitioner is built. So a backend declares::

    @attrs.frozen
    class PartitionVulkanPass(LoweringPass):
        \"\"\"Lower what ExecuTorch's Vulkan delegate supports to it. ...\"\"\"

        info = partitioner_info("partition-vulkan", DELEGATED_VULKAN)
        delegation = "vulkan"
        force_fp16: bool = attrs.field(default=False, validator=is_bool)

        def unavailable_reason(self) -> str | None: ...
        def make_partitioner(self) -> Any: ...

``LoweringPass.run`` lowers with ``lowering.lower`` (to-edge asks ``make_partitioner`` which
ops to keep whole: ``keep_whole``). A partitioner that to-edge must not ask (QNN's) or that
cannot lower here (MPS) uses ``partitioner_info`` alone and writes its own ``run``.
"""

from __future__ import annotations

from typing import Any

import attrs

from pteflow.ir import Fact, Level, Program

from ..base import Pass, PassContext, PassInfo, PassResult
from ..policy import Delegating
from .lowering import lower


def partitioner_info(name: str, *provides: Fact) -> PassInfo:
    """The contract of a partition pass: EDGE -> EDGE, ``provides``, ordered (first pick)."""
    return PassInfo(name=name, level_in=Level.EDGE, provides=set(provides), ordered=True)


@attrs.frozen
class LoweringPass(Pass, Delegating):
    """Base of the partition passes that lower with one upstream partitioner (no ``info``)."""

    def make_partitioner(self) -> Any:
        """The upstream partitioner (ExecuTorch's ``Partitioner``) for this pass's options."""
        raise NotImplementedError(f"{type(self).__name__}.make_partitioner")

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        return lower(self, program, ctx)
