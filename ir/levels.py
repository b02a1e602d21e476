"""The levels a Program passes through, in order."""

from __future__ import annotations

import enum


class Level(enum.IntEnum):
    """What a Program holds. Ordered: a pipeline only moves forward."""

    EAGER = 0  # torch.nn.Module per method
    ATEN = 1  # torch.export.ExportedProgram per method
    EDGE = 2  # executorch.exir.EdgeProgramManager (may hold delegates)
    EXECUTORCH = 3  # executorch.exir.ExecutorchProgramManager (memory-planned)

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Level:
        from .errors import UnknownNameError

        try:
            return cls[text.upper()]
        except KeyError:
            raise UnknownNameError("level", text, [lv.label for lv in cls]) from None
