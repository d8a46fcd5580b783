from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from typing import Callable, Iterator

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


@contextlib.contextmanager
def serving(chat: Callable) -> Iterator[str]:
    """A small OpenAI-compatible server on 127.0.0.1 whose ``/v1/chat/completions`` is the aiohttp
    handler ``chat``, for answers the simulator never gives; yields its base URL."""
    from aiohttp import web

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)

    def serve():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, sock).start())
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
