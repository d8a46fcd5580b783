"""The wire: one chat-completion call through the openai SDK, answered as a ``Reply``.

The SDK does the HTTP (auth headers, base URL, timeouts, its error classes) through its aiohttp-backed
async client, on the event loop of ``_aio.AsyncTransport``; its own retries are off (``max_retries=0``)
because the engine owns retries. Successful bodies are read as raw bytes and parsed
with orjson instead of the SDK's pydantic models: the fields batchframe needs are few, and this is the
hot path (see benchmarks/).

A ``Reply`` never contains the API key: error messages come from the server's body, never from the
request.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import orjson

from ..records import Reply
from .outputs import outputs
from .retry import parse_retry_after

DASHSCOPE_BATCH_URL = "https://batch.dashscope.aliyuncs.com/compatible-mode/v1"
# On Batch Chat the server ends a call at the timeout itself: wait a little longer than that, so an
# answer sent at the server's limit still arrives.
READ_MARGIN_S = 5.0


def is_dashscope(base_url: str) -> bool:
    """True for DashScope hosts (``*.dashscope.aliyuncs.com``), where its limits and rules apply."""
    from urllib.parse import urlsplit

    host = (urlsplit(base_url).hostname or "").lower()
    return host == "dashscope.aliyuncs.com" or host.endswith(".dashscope.aliyuncs.com") \
        or host.endswith("dashscope-intl.aliyuncs.com") or host.endswith("dashscope-us.aliyuncs.com")


def _error_reply(status: int, body: Any, headers: Mapping[str, str] | None, latency: float,
                 fallback_message: str) -> Reply:
    code = message = None
    request_id = None
    if isinstance(body, Mapping):
        err = body.get("error", body)
        if isinstance(err, Mapping):
            code = err.get("code")
            message = err.get("message")
        elif isinstance(err, str):
            message = err
        code = code or body.get("code")
        message = message or body.get("message") or body.get("detail")  # FastAPI-style bodies
        request_id = body.get("request_id") or (err.get("request_id") if isinstance(err, Mapping) else None)
    elif isinstance(body, str) and body.strip():
        message = body.strip()[:500]
    retry_after = None
    if headers is not None:
        request_id = request_id or headers.get("x-request-id") or headers.get("x-dashscope-request-id")
        retry_after = parse_retry_after(headers)
    return Reply(
        kind="http", status=status, code=str(code) if code is not None else None,
        message=str(message) if message is not None else fallback_message,
        retry_after=retry_after, request_id=request_id, latency_s=latency,
    )


_FINISH = {"eos": "stop", "eos_token": "stop", "stop_sequence": "stop", "end_turn": "stop",
           "max_tokens": "length", "max_length": "length", "model_length": "length"}


def parse_completion(raw: bytes, latency: float, request_id: str | None = None) -> Reply:
    """Read the fields batchframe needs from a chat.completion body."""
    try:
        data = orjson.loads(raw)
        choice = data["choices"][0]
        message = choice.get("message") or {}
        if not isinstance(message, Mapping) or not isinstance(data, Mapping):
            raise TypeError("message is not an object")
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
        return Reply(kind="decode", status=200, code="bad_response",
                     message=f"unreadable response body ({type(exc).__name__})",
                     request_id=request_id, latency_s=latency)
    # Other servers: usage may be missing (token columns NA) or lack total_tokens; finish reasons
    # may use their own words (mapped to OpenAI's "stop" / "length", others kept as sent).
    usage = data.get("usage") if isinstance(data.get("usage"), Mapping) else {}
    details = usage.get("completion_tokens_details") or {}
    content = message.get("content")
    if isinstance(content, list):  # some servers answer with content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    prompt_tokens, completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
    total_tokens = usage.get("total_tokens")
    if total_tokens is None and prompt_tokens is not None and completion_tokens is not None:
        total_tokens = prompt_tokens + completion_tokens
    finish_reason = choice.get("finish_reason")
    if isinstance(finish_reason, str):
        finish_reason = _FINISH.get(finish_reason, finish_reason)
    return Reply(
        kind="ok", status=200,
        response=content,
        reasoning_content=message.get("reasoning_content") or message.get("reasoning") or None,
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=total_tokens,
        reasoning_tokens=details.get("reasoning_tokens") if isinstance(details, Mapping) else None,
        model=data.get("model"),
        request_id=request_id or data.get("id"),
        latency_s=latency,
        **outputs(data["choices"]),
    )


def _timed_out(exc: BaseException) -> bool:
    """Whether a wire error was a timeout. With aiohttp under the SDK every connection error
    arrives as a "timeout" (the vendored transport maps any aiohttp connection error to httpx's
    ConnectTimeout): the root cause tells the two apart."""
    import asyncio

    import aiohttp

    seen = exc
    while seen.__cause__ is not None and seen.__cause__ is not seen:
        seen = seen.__cause__
        if isinstance(seen, aiohttp.ClientError):
            if isinstance(seen, aiohttp.ConnectionTimeoutError):
                return False  # never connected: nothing was sent, so nothing can have been served
            return isinstance(seen, (aiohttp.ServerTimeoutError, asyncio.TimeoutError))
    return True


def _failure_reply(exc: Exception, start: float, timeout: float) -> Reply:
    """The ``Reply`` for a call that raised; re-raises what is not a wire outcome (a bug)."""
    import httpx2
    import openai

    latency = time.monotonic() - start
    if isinstance(exc, openai.APIStatusError):
        resp = exc.response
        try:
            payload = orjson.loads(resp.content)
        except Exception:
            try:
                payload = resp.text if resp is not None else None
            except Exception:  # the body was never read
                payload = None
        return _error_reply(exc.status_code, payload, resp.headers if resp is not None else None,
                            latency, f"HTTP {exc.status_code}")
    if isinstance(exc, openai.APITimeoutError) and _timed_out(exc):
        return Reply(kind="timeout", code="timeout",
                     message=f"no answer within the {timeout:g} s timeout (the server may still have served it)",
                     latency_s=latency)
    if isinstance(exc, (openai.APIConnectionError, openai.APITimeoutError)):  # incl. a connection error
        cause = exc.__cause__ or exc                                         # labelled "timeout" above
        while cause.__cause__ is not None and cause.__cause__ is not cause:
            cause = cause.__cause__
        return Reply(kind="connection", code="connection_error",
                     message=f"connection error: {type(cause).__name__}", latency_s=latency)
    import aiohttp

    if isinstance(exc, aiohttp.ClientError):  # one the SDK's transport does not map (a malformed
        return Reply(kind="connection", code="connection_error",  # status line, oversized headers)
                     message=f"connection error: {type(exc).__name__}", latency_s=latency)
    if isinstance(exc, httpx2.HTTPError):  # a body cut off while being read
        return Reply(kind="connection", code="connection_error",
                     message=f"connection error while reading the answer: {type(exc).__name__}",
                     latency_s=latency)
    raise exc


class AsyncCaller:
    """``await caller(body)`` on one event loop: one ``AsyncOpenAI`` client over aiohttp (the SDK's
    ``DefaultAioHttpClient``) carries every call of the run. Per request this costs ~0.7 ms of CPU
    against ~1.6 ms for threads with a sync client each and ~2.4 ms for the SDK's default async
    (httpx2) transport (``benchmarks/bench_wire.py``), and 10,000 waiting calls need no 10,000 threads.
    Build it, use it and close it on the loop's own thread; nothing here is picklable."""

    def __init__(self, *, base_url: str, api_key: str | None, timeout: float, max_connections: int) -> None:
        import ssl

        import httpx2
        import openai

        self._base_url = base_url
        self._timeout = timeout
        # The read timeout covers the server's whole queue wait; connecting stays short (a dead host
        # is noticed in 30 s). The SDK lets a plain float win over the client's Timeout, so the
        # Timeout itself is passed at every level.
        self._wire_timeout = httpx2.Timeout(timeout, connect=min(timeout, 30.0))
        http_client = openai.DefaultAioHttpClient(
            limits=httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections,
                                 keepalive_expiry=30.0),
            timeout=self._wire_timeout,
            trust_env=True,
            verify=ssl.create_default_context(),
            follow_redirects=False,  # a redirected POST would come back as a GET: report the 3xx instead
        )
        self._client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "not-needed", max_retries=0,
                                          timeout=self._wire_timeout, http_client=http_client)

    def __repr__(self) -> str:  # never the key
        return f"AsyncCaller(base_url={self._base_url!r})"

    async def __call__(self, body: Mapping[str, Any]) -> Reply:
        import httpx2

        start = time.monotonic()
        resp = None
        try:
            resp = await self._client.post("/chat/completions", body=body, cast_to=httpx2.Response,
                                           options={"timeout": self._wire_timeout})
            raw = await resp.aread()
        except Exception as exc:
            if resp is not None:
                await resp.aclose()
            return _failure_reply(exc, start, self._timeout)
        return parse_completion(raw, time.monotonic() - start, resp.headers.get("x-request-id"))

    async def aclose(self) -> None:
        await self._client.close()
