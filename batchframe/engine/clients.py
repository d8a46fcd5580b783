"""``client=``: the calls of a run made through the user's own openai client.

For what only the user's client knows: a proxy or gateway, custom auth, default headers, an
Azure-style deployment. Its base URL, headers, auth and proxies are its own; batchframe adds one
thing, ``with_options(max_retries=0, timeout=...)``, because retries have one owner (the engine)
and the run's timeout applies. Answers are read by ``completion`` and errors become the same
``Reply`` kinds as on the lean wire, so the engine cannot tell the two apart.

- ``openai.AsyncOpenAI``: each call on the transport's event loop (``AsyncTransport``); the whole
  call is bounded by ``timeout`` there.
- ``openai.OpenAI`` (sync): each call on a pool of threads (``ThreadTransport``), ``max_workers`` of
  them but at most ``SYNC_MAX_WORKERS``; the client's own timeout bounds each read (a thread cannot
  be interrupted mid-call).

A client is used in the process that was given it, never pickled or sent elsewhere: the adapters
refuse pickling, and the front doors that would need it (Dask, the CLI) refuse ``client=``.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from typing import Any, Mapping

import orjson

from ..exceptions import ConfigError
from ..records import Reply
from .completion import error_reply, parse_completion
from .dispatcher import ThreadTransport
from .transport import AsyncTransport
from .wire import CONNECT_TIMEOUT_S, connection_reply, timeout_reply, unencodable_reply

# Threads for a sync client. Each waits on its own blocking call and all share one GIL: past a few
# hundred, more threads add switching and memory (8 MiB of stack reserved each) but no throughput
# (benchmarks/bench.py: the hand-written loop was slower at 256 threads than at 64). Thousands in
# flight belong on the event loop: pass an AsyncOpenAI, or no client at all.
SYNC_MAX_WORKERS = 256

# The whole-call bound of an async client's call is its timeout and this: the client's own connect
# and read timeouts (the same number) fire first and say whether a connection was ever made.
_GRACE_S = 1.0

# Names of the exceptions (httpx, httpx2, aiohttp) that mean no connection was ever made.
_NEVER_CONNECTED = frozenset({"ConnectTimeout", "PoolTimeout", "ConnectionTimeoutError"})
# ... and those of a call that connected and then waited too long (openai's aiohttp transport also
# calls a dropped connection a timeout: the root cause tells the two apart)
_TIMED_OUT = frozenset({"ReadTimeout", "WriteTimeout", "TimeoutException", "APITimeoutError"})


def _openai():
    import openai

    return openai


def check_client(client: Any) -> None:
    """Refuse anything but an ``openai.OpenAI`` / ``openai.AsyncOpenAI`` (or a subclass: Azure)."""
    openai = _openai()
    if not isinstance(client, (openai.OpenAI, openai.AsyncOpenAI)):
        raise ConfigError(f"client= must be an openai.OpenAI or openai.AsyncOpenAI instance, got "
                          f"{type(client).__module__}.{type(client).__qualname__}")


def client_base_url(client: Any) -> str:
    """The endpoint the request hash uses: the client's base URL, as ``base_url=`` would spell it."""
    check_client(client)
    return str(client.base_url).rstrip("/")


def client_transport(client: Any, *, timeout: float, max_workers: int) -> AsyncTransport | ThreadTransport:
    """The engine's transport for a user's client (close it when done; the client stays open: it is
    the user's)."""
    check_client(client)
    if isinstance(client, _openai().AsyncOpenAI):
        return AsyncTransport(lambda: AsyncClientCall(client, timeout=timeout), name="batchframe-client-io")
    return ThreadTransport(SyncClientCall(client, timeout=timeout),
                           max_threads=max(1, min(int(max_workers), SYNC_MAX_WORKERS)))


def failure_reply(exc: Exception, start: float, timeout: float) -> Reply:
    """The ``Reply`` for what an openai client raised (a user's client, the Batch File control plane);
    re-raises what is not a wire outcome (a bug)."""
    openai = _openai()
    latency = time.monotonic() - start
    if isinstance(exc, openai.APIStatusError):
        resp = exc.response
        try:
            content = resp.content
        except Exception:  # the body was never read
            content = None
        return error_reply(exc.status_code, content, resp.headers, latency)
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        chain = [exc]
        while chain[-1].__cause__ is not None and chain[-1].__cause__ not in chain:
            chain.append(chain[-1].__cause__)
        root = chain[-1]
        never_connected = any(type(e).__name__ in _NEVER_CONNECTED for e in chain)
        timed_out = isinstance(root, TimeoutError) or type(root).__name__ in _TIMED_OUT
        if isinstance(exc, openai.APITimeoutError) and timed_out and not never_connected:
            return timeout_reply(timeout, latency)
        return connection_reply(root, latency)
    for name in ("httpx2", "httpx"):  # a body cut off while being read (openai 3 on httpx2, older on httpx)
        lib = sys.modules.get(name)
        if lib is not None and isinstance(exc, lib.HTTPError):
            return connection_reply(exc, latency, what="connection error while reading the answer")
    raise exc


def _response_class(client: Any) -> type | None:
    """The Response class of the HTTP library under ``client`` (httpx2 for openai 3, httpx before)."""
    import importlib

    http = getattr(client, "_client", None)
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if isinstance(http, (module.Client, module.AsyncClient)):
            return module.Response
    return None


class _ClientCall:
    def __init__(self, client: Any, *, timeout: float) -> None:
        self._base_url = str(client.base_url)
        self._timeout = float(timeout)
        wire_timeout: Any = self._timeout
        kind = type(client.timeout)
        if not isinstance(client.timeout, (int, float)) and hasattr(client.timeout, "connect"):
            wire_timeout = kind(self._timeout, connect=min(self._timeout, CONNECT_TIMEOUT_S))  # its httpx's
        self._client = client.with_options(max_retries=0, timeout=wire_timeout)
        # The body goes out as it is, through the client's documented raw request ``post(...,
        # cast_to=<its httpx>.Response)``: no per-call transform of the parameters, no response
        # model (1.5 against 2.2 ms of CPU a call at 64 threads). An SDK whose HTTP library is not
        # found falls back to ``with_raw_response.create``.
        self._response_class = _response_class(client)
        self._create = self._client.chat.completions.with_raw_response.create
        params = inspect.signature(self._client.chat.completions.create).parameters
        self._known = frozenset(params) - {"extra_headers", "extra_query", "extra_body", "timeout"}

    def _request(self, body: Mapping[str, Any]) -> Any:
        """Make the request (a coroutine for an async client)."""
        if self._response_class is not None:
            return self._client.post("/chat/completions", body=body, cast_to=self._response_class)
        return self._create(**self._split(body))

    def _split(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The body as ``create()`` takes it: its named parameters, the rest in ``extra_body``."""
        known = self._known
        kwargs = {k: v for k, v in body.items() if k in known}
        extra = {k: v for k, v in body.items() if k not in known}
        if extra:
            kwargs["extra_body"] = extra
        return kwargs

    def _answer(self, raw: Any, content: bytes, start: float) -> Reply:
        http = getattr(raw, "http_response", raw)
        return parse_completion(content, time.monotonic() - start, http.headers.get("x-request-id"))

    def _failure(self, exc: Exception, start: float) -> Reply:
        return failure_reply(exc, start, self._timeout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._base_url!r})"

    def __reduce__(self):
        raise TypeError("a run's client= stays in the process it was given to: it cannot be pickled")


class SyncClientCall(_ClientCall):
    """``call(body) -> Reply`` through a sync ``openai.OpenAI`` (thread-safe: one for every thread)."""

    def __call__(self, body: Mapping[str, Any]) -> Reply:
        start = time.monotonic()
        try:
            orjson.dumps(body)  # checked as the lean wire checks it
        except TypeError as exc:
            return unencodable_reply(exc)
        try:
            raw = self._request(body)
            content = raw.read() if self._response_class is not None else raw.http_response.content
        except Exception as exc:
            return self._failure(exc, start)
        return self._answer(raw, content, start)


class AsyncClientCall(_ClientCall):
    """``await call(body) -> Reply`` through an ``openai.AsyncOpenAI`` on the transport's loop."""

    async def __call__(self, body: Mapping[str, Any]) -> Reply:
        start = time.monotonic()
        try:
            orjson.dumps(body)  # checked as the lean wire checks it
        except TypeError as exc:
            return unencodable_reply(exc)
        try:
            raw, content = await asyncio.wait_for(self._read(body), self._timeout + _GRACE_S)
        except asyncio.TimeoutError:  # the whole-call bound (the client's own bounds each read)
            return timeout_reply(self._timeout, time.monotonic() - start)
        except Exception as exc:
            return self._failure(exc, start)
        return self._answer(raw, content, start)

    async def _read(self, body: Mapping[str, Any]) -> tuple[Any, bytes]:
        raw = await self._request(body)
        if self._response_class is not None:
            return raw, await raw.aread()
        return raw, raw.http_response.content

    async def aclose(self) -> None:
        """Nothing to close: the client (and its connections) are the user's."""

