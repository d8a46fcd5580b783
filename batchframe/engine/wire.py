"""The lean wire: one chat-completion call over aiohttp, answered as a ``Reply``.

This is the hot path (10,000 calls in flight, 1,000 a second), so a call costs what the HTTP needs
and no more: one ``aiohttp.ClientSession`` per run, the URL and headers built once, the body
serialised by orjson, the answer read as bytes and parsed by ``completion`` (no SDK models, no
per-request option objects). The openai SDK stays where it serves: a user's own client
(``clients``) and the control plane (Batch File).

What a call promises:
- ``timeout`` bounds the whole call (waiting for a connection, sending, the server's queue wait and
  reading the body), so a server trickling its answer cannot hold it longer; connecting has its own,
  shorter bound (30 s, or ``timeout`` if smaller).
- A call that never got a connection is a ``connection`` reply (nothing was sent, so nothing can
  have been served or billed); one that timed out after connecting is a ``timeout`` reply.
- Redirects are not followed (a redirected POST would come back as a GET): the 3xx is reported.
- Proxies come from the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY), read once per
  run (aiohttp's ``trust_env`` reads them, and ~/.netrc, again for every request: a third of the
  loop's time at 256 in flight).
- The API key lives in one header built once; it is never in a repr, a message or a ``Reply``.

Build, use and close an ``AsyncCaller`` on its event loop's thread; nothing here is picklable.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from typing import Any, Mapping

import orjson

from ..exceptions import ConfigError
from ..records import Reply
from .completion import error_reply, parse_completion

DASHSCOPE_BATCH_URL = "https://batch.dashscope.aliyuncs.com/compatible-mode/v1"
# On Batch Chat the server ends a call at the timeout itself: wait a little longer than that, so an
# answer sent at the server's limit still arrives.
READ_MARGIN_S = 5.0
CONNECT_TIMEOUT_S = 30.0
_USER_AGENT = "batchframe"

# Whether the call running in this task got a connection (set by ``_Connector``). Each call runs
# in its own task (``AsyncTransport``), so each sees its own value.
_connected: contextvars.ContextVar[bool] = contextvars.ContextVar("batchframe_connected", default=False)


def is_dashscope(base_url: str) -> bool:
    """True for DashScope hosts (``*.dashscope.aliyuncs.com``), where its limits and rules apply."""
    from urllib.parse import urlsplit

    host = (urlsplit(base_url).hostname or "").lower()
    return host == "dashscope.aliyuncs.com" or host.endswith(".dashscope.aliyuncs.com") \
        or host.endswith("dashscope-intl.aliyuncs.com") or host.endswith("dashscope-us.aliyuncs.com")


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``<scheme>_proxy``, else ``all_proxy``), or None
    when there is none or ``no_proxy`` covers its host. Read as urllib (and so aiohttp) reads it."""
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all") or None


def chat_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/chat/completions"


def timeout_reply(timeout: float, latency: float) -> Reply:
    return Reply(kind="timeout", code="timeout",
                 message=f"no answer within the {timeout:g} s timeout (the server may still have served it)",
                 latency_s=latency)


def connection_reply(exc: BaseException, latency: float, *, what: str = "connection error") -> Reply:
    return Reply(kind="connection", code="connection_error", message=f"{what}: {type(exc).__name__}",
                 latency_s=latency)


def unencodable_reply(exc: BaseException) -> Reply:
    """A body that cannot be sent as JSON (a lone surrogate in a prompt): this row fails, unsent."""
    return Reply(kind="encode", code="invalid_request_body",
                 message=f"the request cannot be encoded as JSON ({exc}); nothing was sent")


def _connector_class():
    import aiohttp

    class _Connector(aiohttp.TCPConnector):
        """A TCPConnector that notes, for the calling task, that a connection was obtained."""

        async def connect(self, req, traces, timeout):  # type: ignore[override]
            conn = await super().connect(req, traces, timeout)
            _connected.set(True)
            return conn

    return _Connector


class AsyncCaller:
    """``await caller(body)`` on one event loop; one aiohttp session carries every call of the run.

    ``headers`` are added to every request (after the defaults, before Authorization). The session is
    opened on the first call, on the loop that makes it.
    """

    def __init__(self, *, base_url: str, api_key: str | None, timeout: float, max_connections: int,
                 connect_timeout: float = CONNECT_TIMEOUT_S, headers: Mapping[str, str] | None = None,
                 trust_env: bool = True) -> None:
        from urllib.parse import urlsplit

        self._base_url = base_url
        self._url = chat_url(base_url)
        self._timeout = float(timeout)
        self._connect_timeout = min(float(timeout), float(connect_timeout))
        self._max_connections = int(max_connections)
        self._proxy = env_proxy(self._url) if trust_env else None
        scheme = urlsplit(self._proxy).scheme.lower() if self._proxy else ""
        if scheme.startswith("socks"):  # neither a secret nor a host in the message: the URL may hold both
            raise ConfigError(f"the environment names a {scheme} proxy for {base_url}: SOCKS proxies are not "
                             "supported; use an HTTP proxy (HTTP_PROXY / HTTPS_PROXY) or client= with a "
                             "client configured for it")
        hdrs = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": _USER_AGENT}
        hdrs.update(headers or {})
        if api_key:
            hdrs["Authorization"] = f"Bearer {api_key}"
        self._headers = hdrs
        self._session: Any = None

    def __repr__(self) -> str:  # never the key
        return f"AsyncCaller(base_url={self._base_url!r}, timeout={self._timeout:g})"

    def __reduce__(self):
        raise TypeError("an AsyncCaller belongs to its event loop and cannot be pickled")

    def _open(self) -> Any:
        import ssl

        import aiohttp
        from yarl import URL

        connector = _connector_class()(limit=self._max_connections, limit_per_host=0, keepalive_timeout=30.0,
                                       ssl=ssl.create_default_context())
        self._session = aiohttp.ClientSession(
            connector=connector, headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=self._timeout, sock_connect=self._connect_timeout),
        )
        self._url = URL(self._url)
        return self._session

    async def __call__(self, body: Mapping[str, Any]) -> Reply:
        import aiohttp

        start = time.monotonic()
        try:
            data = orjson.dumps(body)
        except TypeError as exc:
            return unencodable_reply(exc)
        session = self._session or self._open()
        _connected.set(False)
        try:
            async with session.post(self._url, data=data, allow_redirects=False, proxy=self._proxy) as resp:
                raw = await resp.read()
                status, headers = resp.status, resp.headers
        except asyncio.TimeoutError as exc:  # the whole-call timeout, or connecting took too long
            latency = time.monotonic() - start
            if _connected.get():
                return timeout_reply(self._timeout, latency)
            return connection_reply(exc, latency, what=f"no connection within {latency:.3g} s (nothing was sent)")
        except aiohttp.ClientError as exc:  # refused, dropped, reset, a malformed answer, a body cut off
            return connection_reply(exc, time.monotonic() - start)
        latency = time.monotonic() - start
        if 200 <= status < 300:
            return parse_completion(raw, latency, headers.get("x-request-id"))
        if 300 <= status < 400:  # what the body of a redirect says is of no use
            return error_reply(status, None, headers, latency, f"HTTP {status} redirect to "
                               f"{headers.get('Location', '?')} not followed: check base_url")
        return error_reply(status, raw, headers, latency)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
