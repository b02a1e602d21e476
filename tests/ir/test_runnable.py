"""The runnable-program invariant (EXECUTORCH) and emit's load + smoke run, on real programs."""

from __future__ import annotations

import pytest
import torch

from pteflow.ir import Program, invariants
from pteflow.ir.errors import InvariantError, PassFailedError
from pteflow.ir.runnable import RuntimeLoadError, missing_kernels, registered_operators
from pteflow.passes import PassManager
from pteflow.passes.convert.export import TorchExportPass
from pteflow.passes.convert.to_edge import ToEdgePass
from pteflow.passes.convert.to_executorch import ToExecutorchPass
from pteflow.passes.emit.emit import EmitPass

# A custom op with an out variant, implemented only in Python: export, to-edge and
# to-executorch accept it, but ExecuTorch's runtime has no kernel for it.
_LIB = torch.library.Library("pteflow_test_nokernel", "DEF")
_LIB.define("twice(Tensor x) -> Tensor")
_LIB.define("twice.out(Tensor x, *, Tensor(a!) out) -> Tensor(a!)")
_LIB.impl("twice", lambda x: x * 2, "CompositeExplicitAutograd")
_LIB.impl("twice.out", lambda x, out: out.copy_(x * 2), "CompositeExplicitAutograd")


class Twice(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.pteflow_test_nokernel.twice(x) + 1


def _no_kernel_program() -> Program:
    program = Program.eager(Twice(), (torch.randn(2, 3),))
    passes = [TorchExportPass(), ToEdgePass(), ToExecutorchPass()]
    return PassManager(passes, verify="off").run(program).program


@pytest.fixture(scope="module")
def no_kernel() -> Program:
    return _no_kernel_program()


def test_registered_operators_include_portable_quantized_and_llm_kernels():
    names = registered_operators()
    assert {"aten::add.out", "aten::linear.out"} <= names
    assert "quantized_decomposed::dequantize_per_channel.out" in names
    assert "llama::custom_sdpa.out" in names


def test_a_program_whose_kernels_all_exist_passes(executorch_mlp):
    assert missing_kernels(executorch_mlp.artifact) == {}
    invariants.check_level(executorch_mlp)


def test_an_op_without_a_kernel_breaks_the_executorch_invariant(no_kernel):
    assert missing_kernels(no_kernel.artifact) == {"forward": ["pteflow_test_nokernel::twice.out"]}
    with pytest.raises(InvariantError, match=r"pteflow_test_nokernel::twice\.out") as e:
        invariants.check_level(no_kernel)
    assert "aten::add" not in str(e.value)  # only the missing one is named


def test_the_manager_names_to_executorch_for_a_program_without_kernels():
    program = Program.eager(Twice(), (torch.randn(2, 3),))
    passes = [TorchExportPass(), ToEdgePass(), ToExecutorchPass()]
    with pytest.raises(InvariantError) as e:
        PassManager(passes, verify="boundaries").run(program)
    assert e.value.pass_name == "to-executorch"
    assert "twice.out" in str(e.value) and len(str(e.value).splitlines()) == 1


def test_emit_writes_nothing_when_a_method_does_not_load(no_kernel, tmp_path):
    out = tmp_path / "m.pte"
    with pytest.raises(RuntimeLoadError, match=r"load method 'forward'.*twice") as e:
        EmitPass(path=str(out)).apply(no_kernel)
    assert len(str(e.value).splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_emit_with_checks_off_still_refuses_to_write(tmp_path):
    out = tmp_path / "m.pte"
    program = Program.eager(Twice(), (torch.randn(2, 3),))
    passes = [TorchExportPass(), ToEdgePass(), ToExecutorchPass(), EmitPass(path=str(out))]
    with pytest.raises(PassFailedError, match=r"emit.*failed.*twice"):
        PassManager(passes, verify="off").run(program)
    assert list(tmp_path.iterdir()) == []


def test_emit_writes_a_program_that_loads_and_runs(executorch_mlp, tmp_path):
    out = tmp_path / "m.pte"
    EmitPass(path=str(out)).apply(executorch_mlp)
    assert out.read_bytes() == executorch_mlp.artifact.buffer


def test_emit_load_error_says_which_operator_is_missing(no_kernel, tmp_path):
    with pytest.raises(RuntimeLoadError) as e:
        EmitPass(path=str(tmp_path / "m.pte")).apply(no_kernel)
    assert "Missing operator: [0] pteflow_test_nokernel::twice.out" in str(e.value)


def _locked_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmLck:"))


def test_a_program_loaded_from_a_file_keeps_no_locked_pages_of_it(tmp_path):
    """The runtime's file loader maps and locks (mlock) every segment it loads: the whole
    constant segment is read in and pinned at load (at stories 37 MB, a peak of the run's
    load check), though a method reads a few rows. ``load_program`` unlocks and hands
    the file's pages back; the method reads them from the file and computes the same."""
    from executorch.runtime import Runtime

    from pteflow.ir.runnable import load_program
    from pteflow.ir.serialized import pte_bytes

    from ..mapped_files import resident_kb
    from ..models import Lookup

    ids = torch.tensor([[0, 7, 2047]])
    program = Program.eager(Lookup(rows=2048), (ids,))
    passes = [TorchExportPass(), ToEdgePass(), ToExecutorchPass()]
    data = pte_bytes(PassManager(passes, verify="off").run(program).program.artifact)
    path = tmp_path / "table.pte"
    path.write_bytes(data)
    want = Lookup(rows=2048)(ids)

    theirs = Runtime.get().load_program(path)
    if _locked_kb() < 2048:
        pytest.skip("the runtime's mlock fails here (RLIMIT_MEMLOCK): nothing is pinned")
    assert resident_kb(path) >= 2048  # upstream's load alone: the whole table, pinned
    del theirs

    ours = load_program(path)
    assert _locked_kb() == 0 and resident_kb(path) < 256
    got = ours.load_method("forward").execute([ids])[0]
    assert torch.equal(got, want)
