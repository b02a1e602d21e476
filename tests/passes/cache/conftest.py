"""The cache's two writers: a forked child per result (the default on Linux) and the
background thread (elsewhere, or ``PTEFLOW_CACHE_WRITER=thread``)."""

from __future__ import annotations

import pytest

from pteflow.passes.cache.forked import WRITER_ENV


@pytest.fixture(params=["fork", "thread"])
def writer_kind(request, monkeypatch) -> str:
    """Run the test with each writer."""
    monkeypatch.setenv(WRITER_ENV, request.param)
    return request.param


@pytest.fixture
def thread_writer(monkeypatch) -> None:
    """The thread writer: what a test observes in this process (serde's calls by
    thread) happens in a forked child otherwise."""
    monkeypatch.setenv(WRITER_ENV, "thread")
