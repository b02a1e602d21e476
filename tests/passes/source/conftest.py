"""Fixtures for the source-pass tests: the built-in tiny Llama, fresh per test.

Source passes edit the eager module in place, so every test gets its own
model; ``reference`` in the LoadedModel is the untouched copy to compare with.
"""

from __future__ import annotations

import pytest

from pteflow.driver.models import LoadedModel
from pteflow.driver.models import tiny_llama as build_tiny_llama


@pytest.fixture
def tiny_llama() -> LoadedModel:
    """dim 64, 2 layers, 4 heads, 2 KV heads (grouped-query), vocab 512, KV cache."""
    return build_tiny_llama(seed=0)


@pytest.fixture
def tiny_llama_mha() -> LoadedModel:
    """The tiny Llama with as many KV heads as query heads (expand-rope-table needs it)."""
    return build_tiny_llama(seed=0, n_kv_heads=4)
