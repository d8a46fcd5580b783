"""client=: a user's own openai client (built here, real sockets to the simulator) carries the calls.
Each outcome becomes the same Reply as on the lean wire; the client's retries are off; its base URL,
key and headers are its own; a sync client runs on a capped thread pool and is never pickled."""

from __future__ import annotations

import asyncio
import pickle
import queue
import socket

import openai
import pytest

from batchframe.engine.clients import (SYNC_MAX_WORKERS, AsyncClientCall, SyncClientCall, check_client,
                                       client_base_url, client_transport)
from batchframe.engine.dispatcher import Engine, EngineConfig, ThreadTransport
from batchframe.engine.retry import RetryPolicy
from batchframe.engine.transport import AsyncTransport
from batchframe.exceptions import ConfigError
from batchframe.records import Request
from batchframe.simulator import Simulator

BODY = {"model": "qwen-plus", "messages": [{"role": "user", "content": "the kettle is great"}]}


def sync_reply(base_url, body=BODY, timeout=10.0, **client_kw):
    client = openai.OpenAI(base_url=base_url, api_key=client_kw.pop("api_key", "x"), **client_kw)
    return SyncClientCall(client, timeout=timeout)(body)


def async_reply(base_url, body=BODY, timeout=10.0, **client_kw):
    client = openai.AsyncOpenAI(base_url=base_url, api_key=client_kw.pop("api_key", "x"), **client_kw)

    async def go():
        call = AsyncClientCall(client, timeout=timeout)
        try:
            return await call(body)
        finally:
            await client.close()

    return asyncio.run(go())


BOTH = pytest.mark.parametrize("reply", [sync_reply, async_reply], ids=["sync", "async"])


@BOTH
def test_an_answer(reply):
    with Simulator() as sim:
        r = reply(sim.base_url)
    assert r.kind == "ok" and r.response and r.finish_reason == "stop" and r.request_id
    assert r.total_tokens == r.prompt_tokens + r.completion_tokens


@BOTH
def test_the_clients_own_retries_are_off(reply):
    """The client would retry a 429 twice by default; the engine owns retries, so one attempt."""
    with Simulator(throttle_rate=1.0, retry_after_s=4) as sim:
        r = reply(sim.base_url)
        assert sim.stats()["requests"] == 1
    assert (r.kind, r.status, r.code, r.retry_after) == ("http", 429, "Throttling.RateQuota", 4.0)


@BOTH
def test_a_dropped_connection_is_a_connection_error(reply):
    with Simulator(drop_rate=1.0) as sim:
        r = reply(sim.base_url)
    assert (r.kind, r.code) == ("connection", "connection_error"), r


@BOTH
def test_no_answer_within_the_timeout_is_a_timeout(reply):
    with Simulator(hang_rate=1.0, hang_s=30) as sim:
        r = reply(sim.base_url, timeout=0.5)
    assert (r.kind, r.code) == ("timeout", "timeout"), r


@BOTH
def test_nobody_listening_is_a_connection_error(reply):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = reply(f"http://127.0.0.1:{port}/v1")
    assert (r.kind, r.code) == ("connection", "connection_error"), r


def test_the_aiohttp_backed_client_tells_drops_from_timeouts():
    """openai's aiohttp transport labels every connection error a timeout; the root cause decides."""
    with Simulator(drop_rate=1.0) as sim:
        r = async_reply(sim.base_url, http_client=openai.DefaultAioHttpClient())
    assert (r.kind, r.code) == ("connection", "connection_error"), r


@BOTH
def test_a_connect_that_never_completes_is_a_connection_error(reply):
    with socket.socket() as listener:  # a full accept queue: further SYNs are dropped, connect hangs
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                fillers.append(s)
            r = reply(f"http://127.0.0.1:{port}/v1", timeout=1.0)
        finally:
            for s in fillers:
                s.close()
    assert (r.kind, r.code) == ("connection", "connection_error"), r


@BOTH
def test_its_key_and_default_headers_are_its_own_and_parameters_pass_by_name(reply):
    secret = "sk-" + "c" * 24
    body = dict(BODY, model="qwen3.5-plus", enable_thinking=False, temperature=0.1)
    with Simulator(api_key=secret) as sim:
        ok = reply(sim.base_url, body, api_key=secret, default_headers={"X-Gateway": "team-a"})
        bad = reply(sim.base_url, body, api_key="sk-wrong")
    assert ok.kind == "ok" and ok.reasoning_tokens in (None, 0)  # enable_thinking reached the server
    assert (bad.status, bad.code) == (401, "invalid_api_key")
    assert secret not in repr(bad) and secret not in repr(ok)


@BOTH
def test_an_unencodable_body_is_refused_unsent(reply):
    with Simulator() as sim:
        r = reply(sim.base_url, {"model": "qwen-plus", "messages": [{"role": "user", "content": "x \ud800"}]})
        assert sim.stats()["requests"] == 0
    assert (r.kind, r.code) == ("encode", "invalid_request_body")


def test_only_openai_clients_are_taken():
    class NotAClient:
        base_url = "http://x"

    for bad in (NotAClient(), "http://x", None):
        with pytest.raises(ConfigError, match="client="):
            check_client(bad)
        with pytest.raises(ConfigError, match="client="):
            client_transport(bad, timeout=5, max_workers=4)


def test_the_base_url_for_the_request_hash_is_spelled_like_base_url():
    with Simulator() as sim:
        assert client_base_url(openai.OpenAI(base_url=sim.base_url, api_key="x")) == sim.base_url
        assert client_base_url(openai.AsyncOpenAI(base_url=sim.base_url + "/", api_key="x")) == sim.base_url


def test_a_sync_client_runs_on_a_capped_thread_pool_and_is_never_pickled():
    client = openai.OpenAI(base_url="http://127.0.0.1:1/v1", api_key="sk-" + "p" * 24)
    transport = client_transport(client, timeout=5, max_workers=10_000)
    assert isinstance(transport, ThreadTransport) and transport.capacity == SYNC_MAX_WORKERS
    assert client_transport(client, timeout=5, max_workers=8).capacity == 8
    with pytest.raises(TypeError, match="client="):
        pickle.dumps(SyncClientCall(client, timeout=5))
    with pytest.raises(TypeError):
        pickle.dumps(client)  # the client itself cannot be pickled either
    assert "sk-" not in repr(SyncClientCall(client, timeout=5))
    engine = Engine(transport, EngineConfig(max_workers=10_000))
    assert engine.config.concurrency == 10_000 and engine._limiter.max_limit == SYNC_MAX_WORKERS


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_an_engine_run_through_a_users_client(kind):
    with Simulator(throttle_rate=0.2, latency_s=0.01) as sim:
        make = openai.OpenAI if kind == "sync" else openai.AsyncOpenAI
        client = make(base_url=sim.base_url, api_key="x")
        transport = client_transport(client, timeout=30, max_workers=8)
        assert isinstance(transport, ThreadTransport if kind == "sync" else AsyncTransport)
        engine = Engine(transport, EngineConfig(max_workers=8, retry=RetryPolicy(base_s=0.01, throttle_base_s=0.01,
                                                                                 cap_s=0.02)))
        requests = [Request(f"r{i}", dict(BODY, messages=[{"role": "user", "content": f"row {i}"}]))
                    for i in range(40)]
        results = list(engine.run(requests))
        stats = sim.stats()
    assert sorted(r.rid for r in results) == sorted(r.rid for r in requests)
    assert all(r.status == "ok" and r.response for r in results)
    assert stats["successes"] == 40 and stats["requests"] == 40 + engine.stats.retries
    assert engine.stats.throttled > 0


def test_closing_the_transport_leaves_the_users_async_client_open():
    with Simulator() as sim:
        client = openai.AsyncOpenAI(base_url=sim.base_url, api_key="x")
        transport = client_transport(client, timeout=30, max_workers=4)
        done: queue.SimpleQueue = queue.SimpleQueue()
        transport.bind(done.put)
        transport.submit(0, BODY, 1)
        assert done.get(timeout=30)[1].ok
        transport.close()
        assert not client.is_closed()


def test_an_async_clients_call_is_bounded_as_a_whole():
    """A trickled answer keeps every read of the client's within its timeout; the call still ends."""
    from test_wire_http import serving, trickle

    with serving(("POST", "/v1/chat/completions", trickle)) as server:
        r = async_reply(server.base_url, timeout=1.0)
    assert (r.kind, r.code) == ("timeout", "timeout"), r  # the whole answer would take 60 s


@pytest.mark.parametrize("reply", [sync_reply, async_reply], ids=["sync", "async"])
def test_without_its_http_library_found_the_public_create_path_carries_the_call(reply, monkeypatch):
    import batchframe.engine.clients as clients

    monkeypatch.setattr(clients, "_response_class", lambda client: None)
    body = dict(BODY, model="qwen3.5-plus", enable_thinking=False, seed=3)  # enable_thinking via extra_body
    with Simulator() as sim:
        ok = reply(sim.base_url, body)
    with Simulator(throttle_rate=1.0) as sim:
        throttled = reply(sim.base_url)
    assert ok.kind == "ok" and ok.response and ok.reasoning_tokens in (None, 0)
    assert (throttled.status, throttled.code) == (429, "Throttling.RateQuota")
