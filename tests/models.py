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
