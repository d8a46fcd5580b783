"""The wire, against the simulator: every outcome of one call through the SDK's aiohttp-backed async
client (``AsyncCaller``) becomes the right ``Reply``; the async transport abandons calls in flight
when closed."""

from __future__ import annotations

import asyncio
import queue
import time

import pytest

from batchframe.engine.transport import AsyncTransport
from batchframe.engine.wire import AsyncCaller
from batchframe.simulator import ErrorRule, Simulator

from conftest import wait_until

BODY = {"model": "qwen-plus", "messages": [{"role": "user", "content": "the kettle is great"}]}


def async_reply(sim, body, timeout=10.0):
    async def go():
        caller = AsyncCaller(base_url=sim.base_url, api_key=None, timeout=timeout, max_connections=4)
        try:
            return await caller(body)
        finally:
            await caller.aclose()

    return asyncio.run(go())


def test_an_answer():
    with Simulator() as sim:
        r = async_reply(sim, BODY)
    assert r.kind == "ok" and r.status == 200 and r.finish_reason == "stop"
    assert r.response and r.prompt_tokens > 0 and r.total_tokens == r.prompt_tokens + r.completion_tokens
    assert r.request_id and r.latency_s >= 0


def test_an_error_body_keeps_status_code_message_and_retry_after():
    with Simulator(throttle_rate=1.0, retry_after_s=7) as sim:
        r = async_reply(sim, BODY)
    assert (r.kind, r.status, r.code) == ("http", 429, "Throttling.RateQuota")
    assert r.message and r.retry_after == 7


def test_a_dropped_connection_is_a_connection_error_not_a_timeout():
    with Simulator(drop_rate=1.0) as sim:
        r = async_reply(sim, BODY)
    assert (r.kind, r.code) == ("connection", "connection_error"), r


def test_no_answer_within_the_timeout_is_a_timeout():
    with Simulator(hang_rate=1.0, hang_s=30) as sim:
        start = time.monotonic()
        r = async_reply(sim, BODY, timeout=0.5)
    assert (r.kind, r.code) == ("timeout", "timeout"), r
    assert time.monotonic() - start < 20


def test_nobody_listening_is_a_connection_error():
    import socket

    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    class Dead:
        base_url = f"http://127.0.0.1:{port}/v1"

    r = async_reply(Dead, BODY)
    assert (r.kind, r.code) == ("connection", "connection_error"), r


def test_moderation_rule_is_an_http_failure_with_its_code():
    rule = ErrorRule(match="[[bad]]", status=400, code="data_inspection_failed", message="Input data may "
                     "contain inappropriate content.")
    with Simulator(error_rules=[rule]) as sim:
        r = async_reply(sim, {"model": "qwen-plus", "messages": [{"role": "user", "content": "[[bad]] x"}]})
    assert (r.kind, r.status, r.code) == ("http", 400, "data_inspection_failed")


def test_async_caller_repr_never_shows_the_key():
    secret = "sk-" + "q" * 24
    caller = AsyncCaller(base_url="http://127.0.0.1:1/v1", api_key=secret, timeout=5, max_connections=1)
    assert secret not in repr(caller)


def test_transport_answers_then_close_abandons_calls_in_flight():
    with Simulator(latency="fixed", latency_s=0.0) as sim:
        done: queue.SimpleQueue = queue.SimpleQueue()
        transport = AsyncTransport(lambda: AsyncCaller(base_url=sim.base_url, api_key=None, timeout=60,
                                                       max_connections=8))
        transport.bind(done.put)
        for i in range(20):
            transport.submit(i, BODY, i + 1)
        answers = [done.get(timeout=30) for _ in range(20)]
        assert sorted(i for i, _ in answers) == list(range(20))
        assert all(r.kind == "ok" for _, r in answers)
        transport.close()
    # a second server whose calls never end: close() must return promptly and cancel them
    with Simulator(hang_rate=1.0, hang_s=3600) as slow:
        done = queue.SimpleQueue()
        transport2 = AsyncTransport(lambda: AsyncCaller(base_url=slow.base_url, api_key=None, timeout=3600,
                                                        max_connections=8))
        transport2.bind(done.put)
        for i in range(5):
            transport2.submit(i, BODY, i + 1)
        wait_until(lambda: slow.stats()["pending"] >= 5)
        assert slow.stats()["pending"] == 5
        start = time.monotonic()
        transport2.close()
        assert time.monotonic() - start < 5
        wait_until(lambda: not slow.stats()["pending"])
        assert slow.stats()["pending"] == 0  # the server saw the clients go away
        assert done.empty()  # abandoned calls produce no reply
        with pytest.raises(RuntimeError):
            transport2.submit(9, BODY, 1)


def test_a_stop_takes_back_calls_not_started_yet():
    """After engine.stop() nothing more goes out: calls still queued for the loop come back
    "abandoned" (never sent, rows pending), and are not counted as sent."""
    from batchframe.engine.dispatcher import Engine, EngineConfig
    from batchframe.records import Request

    with Simulator.spawn(latency="fixed", latency_s=30) as sim:
        transport = AsyncTransport(lambda: AsyncCaller(base_url=sim.base_url, api_key=None, timeout=60,
                                                       max_connections=3000))
        engine = Engine(transport, EngineConfig(max_workers=3000, max_pending=3000, initial_concurrency=3000,
                                                drain_s=0.5))
        requests = (Request(f"r{i}", dict(BODY, messages=[{"role": "user", "content": f"x {i}"}]))
                    for i in range(3000))
        results = engine.run(requests, on_tick=lambda stats: engine.stop("interrupted"))
        assert list(results) == []  # stopped at the first tick, nothing answered within the drain
        received = sim.stats()["requests"]
    assert received < 3000  # the calls not started when stop() came were never sent
    assert received <= engine.stats.sent < 3000  # ... and are not counted as sent (a call started
    # and cancelled by close() before its bytes left is counted, though the server never saw it)
