from __future__ import annotations

import time
from typing import Callable

import pandas as pd
import pytest

from batchframe.engine.retry import RetryPolicy
from batchframe.simulator import Simulator

# Backoff short enough that tests never wait long; retries still go through the real engine.
FAST_RETRY = dict(base_s=0.005, throttle_base_s=0.01, cap_s=0.05)


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch):
    """Shrink the default backoff for every test (the schedule itself is tested in test_retry)."""
    import batchframe.pipeline.options as options

    monkeypatch.setattr(options, "RetryPolicy", lambda **kw: RetryPolicy(**{**FAST_RETRY, **kw}))
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    monkeypatch.delenv("BATCHFRAME_BASE_URL", raising=False)


@pytest.fixture
def sim():
    with Simulator() as s:
        yield s


def make_sim(**kw) -> Simulator:
    return Simulator(**kw)


@pytest.fixture
def reviews() -> pd.DataFrame:
    return pd.read_csv("data/samples/reviews.csv")


def frame(n: int, **cols) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"review number {i}: it works fine" for i in range(n)], **cols})


def wait_until(done: Callable[[], bool], timeout: float = 10.0, poll: float = 0.01) -> None:
    """Wait for something another process or thread does (a server count, a subprocess's progress):
    returns as soon as ``done()`` holds, or after ``timeout`` (the caller's assertion then says what
    did not happen). Not a timing measurement."""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(poll)
