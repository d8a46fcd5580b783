"""HTTP helpers shared by the simulator's routes: the API key check and OpenAI-style error answers."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from ._config import SimConfig

JSON = "application/json"


def key_matches(config: SimConfig, request: web.Request) -> bool:
    """Whether the request carries the configured key (always, when no key is configured)."""
    expected = config.api_key
    if expected is None:
        return True
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {expected}".encode())


def error_response(status: int, code: str | None, message: str, type_: str, request_id: str, *,
                   param: str | None = None, retry_after_s: float | None = None) -> web.Response:
    """An OpenAI-style error answer: ``{"error": {code, message, type, param}, "request_id"}``."""
    headers = {"x-request-id": request_id}
    if status == 429 and retry_after_s is not None:
        # as a server writes it: digits (never "1e+09", which a client rightly cannot read)
        headers["Retry-After"] = (str(int(retry_after_s)) if float(retry_after_s).is_integer()
                                  else repr(float(retry_after_s)))
    payload = {"error": {"code": code, "message": message, "type": type_, "param": param},
               "request_id": request_id}
    return web.Response(status=status, body=orjson.dumps(payload), content_type=JSON, headers=headers)


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type=JSON)


class HTTPError(Exception):
    """An error answer raised from a route's helpers; the route returns :attr:`response`."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.type = status, message, code, param, type_

    def response(self, request_id: str) -> web.Response:
        return error_response(self.status, self.code, self.message, self.type, request_id, param=self.param)


Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


def guarded(config: SimConfig, route: Route, *, check_key: bool = True) -> Route:
    """``route`` behind the API key check, its :class:`HTTPError` answered as error responses."""

    async def guarded_route(request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        if check_key and not key_matches(config, request):
            return error_response(401, "invalid_api_key", "Incorrect API key provided. ",
                                  "invalid_request_error", request_id)
        try:
            return await route(request)
        except HTTPError as exc:
            return exc.response(request_id)

    return guarded_route


def int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """The integer query parameter ``name`` within [low, high] (400 otherwise)."""
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise HTTPError(400, f"Invalid value for '{name}': expected an integer from {low} to {high}.",
                        code="invalid_value", param=name)
    return value


def page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    """A cursor page of ``items`` (already in list order) after the item with id ``after``."""
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    data = items[:limit]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": len(items) > limit}
