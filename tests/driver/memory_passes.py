"""A pass that holds a lot of memory while it runs, loaded with ``--plugin``."""

from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, Program
from pteflow.passes import Pass, PassContext, PassInfo, PassResult

HOG_MB = 256


@attrs.frozen
class HogMemoryPass(Pass):
    """Touch HOG_MB of fresh memory, free it, change nothing."""

    info: ClassVar[PassInfo] = PassInfo(name="hog-memory", level_in=Level.ATEN)

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import torch

        hog = torch.ones(HOG_MB * 1024 * 1024 // 4)  # written, so resident
        del hog
        return PassResult(program, False)
