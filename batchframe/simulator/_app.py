"""The aiohttp application: ``POST /v1/chat/completions`` as Batch Chat would answer it, and the rest."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson
from aiohttp import web

from ._batch_routes import BatchRoutes
from ._batches import BatchStore
from ._config import SimConfig
from ._draw import Draw, body_key
from ._files import FileRoutes, FileStore
from ._http import JSON, error_response, key_matches
from ._outputs import Composer
from ._responder import last_user_text
from ._rules import RATE_MESSAGE, ChatError, Rules, fault_error
from ._stats import STATUS_CLIENT_CLOSED, STATUS_NO_ANSWER, Stats


class _Answered(Exception):
    """Raised to answer a request at once with an error response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__()
        self.response = response


class SimHandler:
    """Answers the simulator's routes per a :class:`SimConfig`, recording everything in :class:`Stats`."""

    def __init__(self, config: SimConfig, stats: Stats) -> None:
        self.config = config
        self.stats = stats
        self.rules = Rules(config)
        self.composer = Composer(config)

    def error(self, status: int, code: str, message: str, type_: str, request_id: str) -> _Answered:
        """Record an error answer and build the exception carrying its response."""
        self.stats.finish(status, code)
        return _Answered(error_response(status, code, message, type_, request_id,
                                        retry_after_s=self.config.retry_after_s))

    def refuse(self, exc: ChatError, request_id: str) -> _Answered:
        return self.error(exc.status, exc.code, exc.message, exc.type, exc.request_id or request_id)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.stats.arrive()
        try:
            return await self._chat(request)
        except _Answered as answered:
            return answered.response

    async def models(self, request: web.Request) -> web.Response:
        """``GET /v1/models``: the configured models."""
        try:
            self.check_key(request, str(uuid.uuid4()))
        except _Answered as answered:
            return answered.response
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "batchframe-simulator"}
                for m in self.config.models]
        return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type=JSON)

    async def stats_view(self, request: web.Request) -> web.Response:
        """``GET /_sim/stats``: the counters as JSON."""
        return web.Response(body=orjson.dumps(self.stats.snapshot(), option=orjson.OPT_NON_STR_KEYS),
                            content_type=JSON)

    async def reset_view(self, request: web.Request) -> web.Response:
        """``POST /_sim/reset``: zero the counters."""
        self.stats.reset()
        return web.Response(body=b'{"reset": true}', content_type=JSON)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        config, rules = self.config, self.rules
        self.check_key(request, str(uuid.uuid4()))
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            raise self.error(400, "invalid_request_error", "The request body is not a valid JSON object.",
                             "invalid_request_error", str(uuid.uuid4()))
        key = body_key(body)
        messages = body.get("messages")
        attempt = self.stats.attempt(key, last_user_text(messages))
        draw = Draw(config.seed, key, attempt)
        rid = draw.request_id
        try:
            model, text = rules.check(body, request.headers.get("Authorization"))
        except ChatError as exc:
            raise self.refuse(exc, rid) from None
        limited = self.stats.admit_rate(time.monotonic(), config.max_qps, config.burst_limit)
        if limited == "burst":
            raise self.error(429, "limit_burst_rate", "Request rate increased too quickly, please slow "
                             "down and ramp up gradually.", "requests", rid)
        if limited == "qps":
            raise self.error(429, "limit_requests", RATE_MESSAGE, "requests", rid)
        try:
            thinking, prompt = rules.content(model, body, text)
        except ChatError as exc:
            raise self.refuse(exc, rid) from None
        fault = draw.fault(config)
        if fault in ("throttle", "error_503"):
            raise self.refuse(fault_error(fault), rid)  # type: ignore[arg-type]
        if not self.stats.enter(model, config.max_pending):
            raise self.error(429, "limit_requests", "Too many pending requests for this model, please "
                             "retry later.", "requests", rid)
        try:
            return await self.serve(request, body, draw, fault, thinking, prompt, (key, attempt))
        except asyncio.CancelledError:
            self.stats.finish(STATUS_CLIENT_CLOSED, "client_closed")
            raise
        finally:
            self.stats.leave(model)

    async def serve(self, request: web.Request, body: dict[str, Any], draw: Draw, fault: str | None,
                    thinking: bool, prompt: int, seen: tuple[bytes, int]) -> web.StreamResponse:
        """Wait in the simulated queue, then answer (or fail) an admitted request."""
        config, rid = self.config, draw.request_id
        wait = config.hang_s if draw.hangs(config) else draw.latency(config)
        if fault == "timeout" or wait > config.server_timeout_s:
            await asyncio.sleep(config.server_timeout_s)
            return self.close(request, "server_timeout")
        if wait > 0:
            await asyncio.sleep(wait)
        if fault == "drop":
            return self.close(request, "connection_dropped")
        if fault == "error_500":
            raise self.refuse(fault_error(fault), rid)  # type: ignore[arg-type]
        key, attempt = seen
        answer_body, usage = self.composer.answer(body, seed=config.seed, key=key, attempt=attempt,
                                                  thinking=thinking, prompt=prompt, completion_id=rid)
        payload = orjson.dumps(answer_body)
        if fault == "bad_body":
            self.stats.finish(200, "bad_body")
            payload = payload[: len(payload) // 2]
        else:
            self.stats.success(key, usage, last_user_text(body.get("messages")))
        return web.Response(body=payload, content_type=JSON, headers={"x-request-id": rid})

    def close(self, request: web.Request, code: str) -> web.Response:
        """Close the connection without an answer (the response returned is never sent)."""
        self.stats.finish(STATUS_NO_ANSWER, code)
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)

    def check_key(self, request: web.Request, rid: str) -> None:
        if not key_matches(self.config, request):
            raise self.error(401, "invalid_api_key", "Incorrect API key provided. ", "invalid_request_error",
                             rid)


def build_app(config: SimConfig, stats: Stats) -> web.Application:
    """The simulator's aiohttp application: chat, models, files, batches and the ``/_sim`` routes."""
    handler = SimHandler(config, stats)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", handler.chat)
    app.router.add_get("/v1/models", handler.models)
    app.router.add_get("/_sim/stats", handler.stats_view)
    app.router.add_post("/_sim/reset", handler.reset_view)
    files = FileStore(stats)
    batches = BatchStore(config, stats, files)
    FileRoutes(config, files).add_to(app.router)
    BatchRoutes(config, batches).add_to(app.router)

    async def close_stores(app: web.Application) -> None:
        await batches.close()
        files.close()

    app.on_cleanup.append(close_stores)
    return app
