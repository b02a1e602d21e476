"""Small real models for the quantization passes.

``token_mlp``: an embedding and two biased linears (what every quantization
pass touches, nothing else). ``tiny_llama``: ExecuTorch's Llama Transformer
with a KV cache (dim 64, 2 layers, 4 heads, 2 KV heads, vocab 512, max_seq_len
128), seeded, exported as export_llama exports it. The ATEN fixtures are
shared: the passes under test copy what they change, and the tests check
that their inputs stay untouched.
"""

from __future__ import annotations

import pytest
import torch

from pteflow.ir import Program
from pteflow.passes.convert.export import TorchExportPass

VOCAB, DIM, HIDDEN = 100, 64, 128
LLAMA = {
    "dim": 64,
    "n_layers": 2,
    "n_heads": 4,
    "n_kv_heads": 2,
    "vocab_size": 512,
    "max_seq_len": 128,
}


class TokenMLP(torch.nn.Module):
    """Embedding -> Linear -> ReLU -> Linear."""

    def __init__(
        self, *, bias: bool = True, vocab: int = VOCAB, dim: int = DIM, hidden: int = HIDDEN
    ):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, dim)
        self.fc1 = torch.nn.Linear(dim, hidden, bias=bias)
        self.fc2 = torch.nn.Linear(hidden, dim, bias=bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(self.emb(tokens))))


def token_mlp(**kwargs) -> tuple[torch.nn.Module, tuple[torch.Tensor]]:
    torch.manual_seed(0)
    return TokenMLP(**kwargs).eval(), (torch.randint(0, VOCAB, (1, 8)),)


@pytest.fixture
def eager_token_mlp() -> Program:
    module, inputs = token_mlp()
    return Program.eager(module, inputs)


@pytest.fixture(scope="session")
def aten_token_mlp() -> Program:
    module, inputs = token_mlp()
    return TorchExportPass().apply(Program.eager(module, inputs)).program


def llama_program() -> Program:
    """The tiny Llama as export_llama prepares it: KV cache, dynamic token dimension."""
    from executorch.examples.models.llama.llama_transformer import construct_transformer
    from executorch.examples.models.llama.model_args import ModelArgs

    torch.manual_seed(0)
    args = ModelArgs(
        **LLAMA, max_context_len=LLAMA["max_seq_len"], use_kv_cache=True, enable_dynamic_shape=True
    )
    model = construct_transformer(args).eval()
    inputs = (
        torch.tensor([[2, 3, 4]], dtype=torch.long),
        {"input_pos": torch.tensor([0], dtype=torch.long)},
    )
    shapes = (
        {1: torch.export.Dim("token_dim", max=LLAMA["max_seq_len"] - 1)},
        {"input_pos": {0: 1}},
    )
    return Program.eager(
        model,
        inputs,
        dynamic_shapes=shapes,
        metadata={"vocab_size": LLAMA["vocab_size"], "max_seq_len": LLAMA["max_seq_len"]},
    )


@pytest.fixture
def eager_llama() -> Program:
    return llama_program()


@pytest.fixture(scope="session")
def aten_llama() -> Program:
    return TorchExportPass().apply(llama_program()).program


def decode(module: torch.nn.Module, tokens: list[int]) -> list[torch.Tensor]:
    """Logits of feeding ``tokens`` one at a time to a KV-cache Llama (fresh cache)."""
    with torch.no_grad():
        return [
            module(torch.tensor([[t]]), {"input_pos": torch.tensor([i])})
            for i, t in enumerate(tokens)
        ]


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    """||got - want|| / ||want||: how far a quantized output is from fp32."""
    return ((got.double() - want.double()).norm() / want.double().norm()).item()


def fresh_module(ep) -> torch.nn.Module:
    """``ep.module()`` with private copies of its mutable buffers (the KV cache), so
    running it leaves a shared fixture's state as it was."""
    from pteflow.passes.quantize.pt2e import calibration_module

    return calibration_module(ep)
