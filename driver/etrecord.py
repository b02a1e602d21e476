"""``driver run --etrecord PATH``: ExecuTorch's ETRecord for the run.

ExecuTorch's devtools (``executorch.devtools.Inspector``, its numeric gap analysis) join
an ETDump from the runtime with an ETRecord from export time: the edge program (with its
delegates), the ExecuTorch program with its debug handle map, and optionally the ATen
program. ``executorch.devtools.generate_etrecord`` writes it; it wants the edge program
*as it was before* ``to_executorch`` (which changes the graph modules in place), so this
observer keeps a deep copy of the program entering the EDGE -> EXECUTORCH conversion, and
of the ATen program entering to-edge. It must see those passes run: a run with
``--etrecord`` does not resume from the pass-result cache.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pteflow.ir import Level
from pteflow.passes.manager import PassObserver


class ETRecordWriter(PassObserver):
    """Keep copies of the ATen and edge programs; ``write`` the ETRecord after the run."""

    needs_every_pass = True
    flag = "--etrecord"

    def __init__(self, path: Path):
        self.path = path
        self.aten: Any = None
        self.edge: Any = None

    @classmethod
    def for_run(cls, path: Path, passes: Any) -> ETRecordWriter:
        """The writer for a run of ``passes``, refused before any work if it cannot be made.

        Raises:
            UserError: no pass converts EDGE to EXECUTORCH, or ``path`` cannot be written.
        """
        from pteflow.ir.errors import UserError

        if not any(
            p.contract.level_in == Level.EDGE and p.contract.level_out == Level.EXECUTORCH
            for p in passes
        ):
            raise UserError(
                "--etrecord needs a run that converts an edge program to ExecuTorch: "
                "add to-edge and to-executorch"
            )
        if path.is_dir() or not path.parent.is_dir():
            raise UserError(f"--etrecord {path}: not a file in an existing directory")
        return cls(path)

    def before(self, rank: int, pass_: Any, program_in: Any) -> None:
        contract = pass_.contract
        if contract.level_in == Level.ATEN and contract.level_out == Level.EDGE:
            self.aten = copy.deepcopy(program_in.artifact)
        if contract.level_in == Level.EDGE and contract.level_out == Level.EXECUTORCH:
            self.edge = copy.deepcopy(program_in.artifact)

    def write(self, program: Any) -> None:
        """Write the ETRecord of the run that produced ``program`` (an EXECUTORCH program).

        Raises:
            UserError: the run did not reach EXECUTORCH through an edge program here.
        """
        from pteflow.ir.errors import UserError

        if program.level != Level.EXECUTORCH or self.edge is None:
            raise UserError(
                "--etrecord needs a run that converts an edge program to ExecuTorch "
                "(to-edge ... to-executorch); this pipeline does not"
            )
        from executorch.devtools import generate_etrecord

        exported = None
        if self.aten is not None:
            exported = self.aten if len(self.aten) > 1 else next(iter(self.aten.values()))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        generate_etrecord(str(self.path), self.edge, program.artifact, exported_program=exported)
