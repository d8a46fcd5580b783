"""The lean wire against small servers on 127.0.0.1 that misbehave on purpose: a trickled answer ends
at the timeout, a call that never connected is a connection error, redirects are reported and not
followed, proxies come from the environment, the key goes in one header only."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

import orjson
import pytest
from aiohttp import web

from batchframe.engine.wire import AsyncCaller
from batchframe.simulator import Simulator

BODY = {"model": "qwen-plus", "messages": [{"role": "user", "content": "the kettle is great"}]}
ANSWER = orjson.dumps({"id": "c1", "choices": [{"index": 0, "message": {"role": "assistant", "content": "positive"},
                                                "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}})


class Server:
    """An aiohttp app on its own loop in a thread; ``seen`` records (method, path, headers)."""

    def __init__(self, routes) -> None:
        self.seen: list[tuple[str, str, dict]] = []
        self.loop = asyncio.new_event_loop()
        app = web.Application()

        @web.middleware
        async def record(request, handler):
            self.seen.append((request.method, request.path, dict(request.headers)))
            return await handler(request)

        app.middlewares.append(record)
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
        self.runner = web.AppRunner(app, handler_cancellation=True)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.SockSite(self.runner, sock).start())
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@contextlib.contextmanager
def serving(*routes):
    server = Server(routes)
    try:
        yield server
    finally:
        server.close()


def call(base_url, body=BODY, *, n=1, **kw):
    kw.setdefault("timeout", 10.0)
    kw.setdefault("max_connections", 8)

    async def go():
        caller = AsyncCaller(base_url=base_url, api_key=kw.pop("api_key", None), **kw)
        try:
            return await asyncio.gather(*(asyncio.ensure_future(caller(body)) for _ in range(n)))
        finally:
            await caller.aclose()

    replies = asyncio.run(go())
    return replies[0] if n == 1 else replies


async def trickle(request: web.Request) -> web.StreamResponse:
    """A correct answer, one byte every 0.2 s (60 s for the whole body)."""
    await request.read()
    resp = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": str(len(ANSWER))})
    await resp.prepare(request)
    for i in range(len(ANSWER)):
        await resp.write(ANSWER[i:i + 1])
        await asyncio.sleep(0.2)
    return resp


def test_a_trickled_answer_ends_at_the_timeout_not_after_it_arrives():
    with serving(("POST", "/v1/chat/completions", trickle)) as server:
        r = call(server.base_url, timeout=1.0)
    assert (r.kind, r.code) == ("timeout", "timeout"), r  # the whole answer would take 60 s


def test_a_slow_but_steady_answer_within_the_timeout_is_read():
    async def quick(request):
        await request.read()
        return web.Response(body=ANSWER, content_type="application/json", headers={"x-request-id": "abc"})

    with serving(("POST", "/v1/chat/completions", quick)) as server:
        r = call(server.base_url)
    assert r.ok and r.response == "positive" and r.total_tokens == 6 and r.request_id == "abc"


def test_a_connect_that_never_completes_is_a_connection_error():
    """A listening socket whose accept queue is full: the kernel drops further SYNs, so connecting
    hangs until the connect timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):  # fill the accept queue (its size is the backlog + 1 on Linux)
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                fillers.append(s)
            r = call(f"http://127.0.0.1:{port}/v1", timeout=5.0, connect_timeout=0.5)
        finally:
            for s in fillers:
                s.close()
    assert (r.kind, r.code) == ("connection", "connection_error"), r


def test_a_redirect_is_reported_not_followed():
    async def moved(request):
        raise web.HTTPTemporaryRedirect("/elsewhere/chat/completions")

    async def elsewhere(request):
        return web.Response(body=ANSWER, content_type="application/json")

    with serving(("POST", "/v1/chat/completions", moved), ("*", "/elsewhere/chat/completions", elsewhere)) as s:
        r = call(s.base_url)
        paths = [path for _, path, _ in s.seen]
    assert (r.kind, r.status) == ("http", 307) and "/elsewhere/chat/completions" in r.message
    assert paths == ["/v1/chat/completions"]


def test_the_key_goes_in_the_authorization_header_once_and_nowhere_else():
    secret = "sk-" + "w" * 24
    seen_bodies = []

    async def refuse(request):
        seen_bodies.append(await request.read())
        return web.json_response({"error": {"code": "invalid_api_key", "message": "Incorrect API key provided."}},
                                 status=401)

    with serving(("POST", "/v1/chat/completions", refuse)) as server:
        r = call(server.base_url, api_key=secret)
        (_, _, headers), = server.seen
    assert headers["Authorization"] == f"Bearer {secret}"
    assert [v for k, v in headers.items() if secret in v and k != "Authorization"] == []
    assert secret.encode() not in seen_bodies[0]
    assert secret not in repr(r) and (r.status, r.code) == (401, "invalid_api_key")
    caller = AsyncCaller(base_url=server.base_url, api_key=secret, timeout=5, max_connections=1)
    assert secret not in repr(caller)
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(caller)


def test_an_unencodable_body_fails_its_row_unsent():
    with serving(("POST", "/v1/chat/completions", trickle)) as server:
        r = call(server.base_url, {"model": "qwen-plus", "messages": [{"role": "user", "content": "bad \ud800"}]})
        assert server.seen == []
    assert (r.kind, r.code) == ("encode", "invalid_request_body")
    from batchframe.engine.taxonomy import Action, classify

    assert classify(r).action is Action.FAIL_ROW


class FakeProxy:
    """A forward proxy that answers every request itself and records its request line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(asyncio.start_server(self.handle, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def handle(self, reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        self.lines.append(lines[0])
        length = next(int(h.split(":", 1)[1]) for h in lines if h.lower().startswith("content-length:"))
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER))
        await writer.drain()
        writer.close()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def proxy(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
                 "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    p = FakeProxy()
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{p.port}")
    yield p
    p.close()


def test_http_proxy_from_the_environment_is_used(proxy):
    r = call("http://upstream.invalid/v1")  # a name that never resolves: only the proxy can answer
    assert r.ok and r.response == "positive"
    assert proxy.lines == ["POST http://upstream.invalid/v1/chat/completions HTTP/1.1"]


def test_no_proxy_from_the_environment_bypasses_it(proxy, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with Simulator() as sim:
        r = call(sim.base_url)
    assert r.ok and proxy.lines == []


def test_all_proxy_is_honoured_too(proxy, monkeypatch):
    monkeypatch.delenv("HTTP_PROXY")
    monkeypatch.setenv("ALL_PROXY", f"http://127.0.0.1:{proxy.port}")
    r = call("http://upstream.invalid/v1")
    assert r.ok and proxy.lines == ["POST http://upstream.invalid/v1/chat/completions HTTP/1.1"]


def test_a_socks_proxy_in_the_environment_is_refused_clearly(proxy, monkeypatch):
    from batchframe.exceptions import ConfigError

    monkeypatch.setenv("HTTP_PROXY", "socks5://user:pw@127.0.0.1:1080")
    with pytest.raises(ConfigError, match="socks5 proxy") as info:
        AsyncCaller(base_url="http://upstream.invalid/v1", api_key=None, timeout=5, max_connections=1)
    assert "pw" not in str(info.value) and "1080" not in str(info.value)
