"""Shared fixtures: small real programs at every level.

ATEN programs are fresh per test (passes under test edit graphs in place); the
EDGE and EXECUTORCH ones are shared by the session and must only be read.
"""

from __future__ import annotations

import pytest

from pteflow.ir import Level, Program
from pteflow.testing import build_program

from .models import mlp


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory, monkeypatch):
    """``driver run`` caches pass results by default: never in the user's own cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    # and never the user's own key (passes/cache/auth.py)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))


@pytest.fixture
def every_result_stored(monkeypatch) -> None:
    """Every pass result a cache session can store is stored whole. Whether one is worth
    storing (``passes/cache/worth.py``) weighs a pass's run time against how long the
    forked writer's child has been storing the one before: a loaded machine (CI) tips
    a quick pass such as a small program's to-executorch to a key. For tests of what a
    resume restores; ``test_store_cost`` tests the weighing itself."""
    from pteflow.passes.cache import worth

    monkeypatch.setattr(worth, "PAYBACK", 0.0)


@pytest.fixture
def eager_mlp() -> Program:
    module, inputs = mlp()
    return Program.eager(module, inputs)


@pytest.fixture
def aten_mlp() -> Program:
    module, inputs = mlp()
    return build_program(module, inputs, level=Level.ATEN)


@pytest.fixture(scope="session")
def edge_mlp() -> Program:
    module, inputs = mlp()
    return build_program(module, inputs, level=Level.EDGE)


@pytest.fixture(scope="session")
def executorch_mlp() -> Program:
    module, inputs = mlp()
    return build_program(module, inputs, level=Level.EXECUTORCH)
