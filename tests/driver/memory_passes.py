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


@attrs.frozen
class CountWeightCopiesPass(Pass):
    """Write how many distinct tensors of ``shape`` are alive (by storage), change nothing.

    For the tiny Llama, (512, 64) is the embedding and the output head: two tensors in
    the program, and any copy of the model (a deep-copied reference) adds two more.
    """

    info: ClassVar[PassInfo] = PassInfo(name="count-weight-copies", level_in=Level.ATEN)
    path: str = ""
    shape: str = "512x64"

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import gc
        from pathlib import Path

        import torch

        want = tuple(int(d) for d in self.shape.split("x"))
        frozen = gc.get_freeze_count()  # the driver freezes what was alive before the passes
        gc.unfreeze()  # ... and get_objects() does not list frozen objects
        storages = {
            t.untyped_storage().data_ptr()
            for t in gc.get_objects()
            if type(t) in (torch.Tensor, torch.nn.Parameter)
            and t.device.type == "cpu"
            and tuple(t.shape) == want
        }
        if frozen:
            gc.freeze()
        Path(self.path).write_text(str(len(storages)))
        return PassResult(program, False)


@attrs.frozen
class ReadWeightsPass(Pass):
    """Read every byte of the program's weights (as partitioning or the emitter does)."""

    info: ClassVar[PassInfo] = PassInfo(name="read-weights", level_in=Level.ATEN)

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        for ep in program.exported_programs().values():
            for t in ep.state_dict.values():
                t.double().sum()
        return PassResult(program, False)


@attrs.frozen
class ResidentFilePass(Pass):
    """Write how many kB of ``file``'s mappings are resident (``/proc/self/smaps``) to
    ``path``, change nothing."""

    info: ClassVar[PassInfo] = PassInfo(name="resident-file", level_in=Level.ATEN)
    file: str = ""
    path: str = ""

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        from pathlib import Path

        from tests.mapped_files import resident_kb

        Path(self.path).write_text(str(resident_kb(Path(self.file))))
        return PassResult(program, False)


@attrs.frozen
class FrozenCountPass(Pass):
    """Write how many objects the collector leaves alone (``gc.get_freeze_count()``)."""

    info: ClassVar[PassInfo] = PassInfo(name="frozen-count", level_in=Level.ATEN)
    path: str = ""

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import gc
        from pathlib import Path

        Path(self.path).write_text(str(gc.get_freeze_count()))
        return PassResult(program, False)
