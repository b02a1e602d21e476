"""Small real models for tests (seeded, built in code)."""

from __future__ import annotations

import torch


class MLP(torch.nn.Module):
    """Two linear layers with a ReLU: the smallest model with something to lower."""

    def __init__(self, d_in: int = 16, d_hidden: int = 32, d_out: int = 8):
        super().__init__()
        self.fc1 = torch.nn.Linear(d_in, d_hidden)
        self.fc2 = torch.nn.Linear(d_hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def mlp() -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    """A seeded MLP and one example input: the ``--model tests.models:mlp`` source."""
    torch.manual_seed(0)
    return MLP().eval(), (torch.randn(4, 16),)


class Lookup(torch.nn.Module):
    """An embedding table (``rows`` x 256 fp32: 1 MB per 1024 rows) that a portable program
    keeps as a constant in its file."""

    def __init__(self, rows: int = 1024) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.table = torch.nn.Embedding(rows, 256)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table(ids) * 2


class Fp16Overflow(torch.nn.Module):
    """Finite in fp32; in fp16 its logits overflow to inf and its softmax is NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(16, 8)
        self.fc = torch.nn.Linear(8, 32)
        with torch.no_grad():
            self.emb.weight.fill_(30.0)
            self.fc.weight.copy_(torch.linspace(-400.0, 400.0, 256).reshape(32, 8))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.fc(self.emb(tokens)) / 1e3, dim=-1)


def fp16_overflow() -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    """``--model tests.models:fp16_overflow``: fp32 outputs are finite, fp16 ones NaN."""
    torch.manual_seed(0)
    return Fp16Overflow().eval(), (torch.arange(16).reshape(2, 8),)


class ConvNorm(torch.nn.Module):
    """A conv, a layer norm, a softmax and an add: a non-Llama model with other ops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.norm = torch.nn.LayerNorm(8)
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).mean(dim=(2, 3))
        return torch.softmax(self.head(self.norm(y)), dim=-1) + y[:, :4]


def conv_norm() -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    """A seeded ConvNorm and one example image batch."""
    torch.manual_seed(1)
    return ConvNorm().eval(), (torch.randn(2, 3, 8, 8),)
