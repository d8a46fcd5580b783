"""The aiohttp application: ``POST /v1/chat/completions`` as Batch Chat would answer it."""

from __future__ import annotations

import asyncio
import hmac
import time
import uuid
from typing import Any

import orjson
from aiohttp import web

from ._completion import completion, prompt_tokens
from ._config import SimConfig
from ._draw import Draw, body_key
from ._responder import default_responder, json_mode, last_user_text, message_text
from ._stats import STATUS_CLIENT_CLOSED, STATUS_NO_ANSWER, Stats

_RATE_MESSAGE = "Requests rate limit exceeded, please try again later."
_JSON = "application/json"


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
        self.responder = config.responder or default_responder

    def error(self, status: int, code: str, message: str, type_: str, request_id: str) -> _Answered:
        """Record an error answer and build the exception carrying its response."""
        self.stats.finish(status, code)
        headers = {"x-request-id": request_id}
        if status == 429 and self.config.retry_after_s is not None:
            wait = self.config.retry_after_s  # as a server writes it: digits, never "1e+09"
            headers["Retry-After"] = str(int(wait)) if float(wait).is_integer() else repr(float(wait))
        payload = {"error": {"code": code, "message": message, "type": type_, "param": None},
                   "request_id": request_id}
        return _Answered(web.Response(status=status, body=orjson.dumps(payload),
                                      content_type=_JSON, headers=headers))

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
        return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type=_JSON)

    async def stats_view(self, request: web.Request) -> web.Response:
        """``GET /_sim/stats``: the counters as JSON."""
        return web.Response(body=orjson.dumps(self.stats.snapshot(), option=orjson.OPT_NON_STR_KEYS),
                            content_type=_JSON)

    async def reset_view(self, request: web.Request) -> web.Response:
        """``POST /_sim/reset``: zero the counters."""
        self.stats.reset()
        return web.Response(body=b'{"reset": true}', content_type=_JSON)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        config = self.config
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
        draw = Draw(config.seed, key, self.stats.attempt(key, last_user_text(messages)))
        rid = draw.request_id
        model = body.get("model")
        if not isinstance(model, str) or model not in config.models:
            raise self.error(404, "model_not_found",
                             f"The model `{model}` does not exist or you do not have access to it.",
                             "invalid_request_error", rid)
        text = self.validate(body, rid)
        for rule in config.error_rules:
            if rule.match in text:
                raise self.error(rule.status, rule.code, rule.message, rule.type, rid)
        limited = self.stats.admit_rate(time.monotonic(), config.max_qps, config.burst_limit)
        if limited == "burst":
            raise self.error(429, "limit_burst_rate", "Request rate increased too quickly, please slow "
                             "down and ramp up gradually.", "requests", rid)
        if limited == "qps":
            raise self.error(429, "limit_requests", _RATE_MESSAGE, "requests", rid)
        thinking = self.thinking(model, body, rid)
        prompt = self.check_content(body, text, thinking, rid)
        fault = draw.fault(config)
        if fault == "throttle":
            raise self.error(429, "Throttling.RateQuota", _RATE_MESSAGE, "requests", rid)
        if fault == "error_503":
            raise self.error(503, "ModelServingError", "Model serving is busy", "model_serving_error", rid)
        if not self.stats.enter(model, config.max_pending):
            raise self.error(429, "limit_requests", "Too many pending requests for this model, please "
                             "retry later.", "requests", rid)
        try:
            return await self.serve(request, body, draw, fault, thinking, prompt, key)
        except asyncio.CancelledError:
            self.stats.finish(STATUS_CLIENT_CLOSED, "client_closed")
            raise
        finally:
            self.stats.leave(model)

    async def serve(self, request: web.Request, body: dict[str, Any], draw: Draw, fault: str | None,
                    thinking: bool, prompt: int, key: bytes) -> web.StreamResponse:
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
            raise self.error(500, "InternalError", "An internal error has occurred, please try again later.",
                             "internal_error", rid)
        answer_body, usage = completion(body, self.responder(body), thinking=thinking, prompt=prompt,
                                        completion_id=rid)
        payload = orjson.dumps(answer_body)
        if fault == "bad_body":
            self.stats.finish(200, "bad_body")
            payload = payload[: len(payload) // 2]
        else:
            self.stats.success(key, usage)
        return web.Response(body=payload, content_type=_JSON, headers={"x-request-id": rid})

    def close(self, request: web.Request, code: str) -> web.Response:
        """Close the connection without an answer (the response returned is never sent)."""
        self.stats.finish(STATUS_NO_ANSWER, code)
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)

    def check_key(self, request: web.Request, rid: str) -> None:
        expected = self.config.api_key
        if expected is None:
            return
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
            raise self.error(401, "invalid_api_key", "Incorrect API key provided. ", "invalid_request_error",
                             rid)

    def validate(self, body: dict[str, Any], rid: str) -> str:
        """Check the request's shape; return the text of all its messages."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise self.error(400, "InvalidParameter", "The parameter `messages` must be a non-empty list of "
                             "message objects.", "invalid_request_error", rid)
        for name in ("max_tokens", "max_completion_tokens"):
            value = body.get(name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise self.error(400, "InvalidParameter", f"The parameter `{name}` must be a positive "
                                 "integer.", "invalid_request_error", rid)
        return "\n".join(message_text(m.get("content")) for m in messages)

    def thinking(self, model: str, body: dict[str, Any], rid: str) -> bool:
        """Whether this request thinks: the model's default, overridden by ``enable_thinking``."""
        default = self.config.thinking_models.get(model)
        enable = body.get("enable_thinking")
        if enable is not None and not isinstance(enable, bool):
            raise self.error(400, "InvalidParameter", "The parameter `enable_thinking` must be a boolean.",
                             "invalid_request_error", rid)
        if default is None:
            return False
        return default if enable is None else enable

    def check_content(self, body: dict[str, Any], text: str, thinking: bool, rid: str) -> int:
        """Reject what the model would refuse (too long, JSON mode while thinking, moderation).

        Returns the prompt token count.
        """
        config = self.config
        prompt = prompt_tokens(body["messages"])
        if config.max_input_tokens is not None and prompt > config.max_input_tokens:
            raise self.error(400, "InvalidParameter", f"Range of input length should be [1, "
                             f"{config.max_input_tokens}]", "invalid_request_error", rid)
        mode = json_mode(body)
        if thinking and mode is not None:
            raise self.error(400, "InvalidParameter", f"The parameter `response_format` ({mode}) is not "
                             "supported when enable_thinking is true.", "invalid_request_error", rid)
        if config.moderation_marker is not None and config.moderation_marker in text:
            raise self.error(400, "data_inspection_failed", "Input data may contain inappropriate content.",
                             "data_inspection_failed", rid)
        return prompt


def build_app(config: SimConfig, stats: Stats) -> web.Application:
    """The simulator's aiohttp application."""
    handler = SimHandler(config, stats)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", handler.chat)
    app.router.add_get("/v1/models", handler.models)
    app.router.add_get("/_sim/stats", handler.stats_view)
    app.router.add_post("/_sim/reset", handler.reset_view)
    return app
