"""Reading what a server answered: a chat.completion body, or an error body, into a ``Reply``.

One module for every way an answer arrives: the lean wire (``wire``), a user's own openai client
(``clients``) and, later, Batch File result lines. Nothing here raises on a server's bad data: an
unreadable success body is a ``decode`` reply (retried), and a malformed usage never costs the
answer. Each token count is kept when it is a valid count (an int >= 0 and < 2**63, or a float with
an integral value in that range, such as ``12.0``: JSON has one number type and some servers write
counts as floats); anything else (7.5, "abc", 2**70, true, {}, [], NaN) becomes None and its field
name goes into ``Reply.bad_usage``, so the run can say once that some counts were unknown.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping

import orjson

from ..records import Reply
from .outputs import outputs
from .retry import parse_retry_after

_MAX_COUNT = 2 ** 63
_MAX_MESSAGE = 2000  # characters of a server's error message kept (a whole HTML page is not useful)

_FINISH = {"eos": "stop", "eos_token": "stop", "stop_sequence": "stop", "end_turn": "stop",
           "max_tokens": "length", "max_length": "length", "model_length": "length"}


def loads(raw: bytes | str) -> Any:
    """orjson, with the stdlib as the fallback for what orjson refuses but JSON allows (a number
    too large for a double, such as 1e400); raises ValueError when neither can read it."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            return json.loads(raw)
        except (ValueError, TypeError, RecursionError) as exc:
            raise ValueError(str(exc)) from None


def count(value: Any) -> tuple[int | None, bool]:
    """``(the count, valid)``: None with valid=True when the field is absent (null)."""
    if value is None:
        return None, True
    if type(value) is int:  # not bool: True is no token count
        return (value, True) if 0 <= value < _MAX_COUNT else (None, False)
    if type(value) is float and math.isfinite(value) and value.is_integer() and 0 <= value < _MAX_COUNT:
        return int(value), True
    return None, False


def _usage(data: Mapping[str, Any], bad: list[str]) -> tuple[int | None, ...]:
    usage = data.get("usage")
    if usage is None:
        return None, None, None, None
    if not isinstance(usage, Mapping):
        bad.append("usage")
        return None, None, None, None
    counts = []
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value, ok = count(usage.get(name))
        if not ok:
            bad.append(name)
        counts.append(value)
    prompt, completion, total = counts
    if total is None and "total_tokens" not in bad and prompt is not None and completion is not None:
        total = prompt + completion  # some servers leave it out
    details = usage.get("completion_tokens_details")
    reasoning = None
    if isinstance(details, Mapping):
        reasoning, ok = count(details.get("reasoning_tokens"))
        if not ok:
            bad.append("reasoning_tokens")
    elif details is not None:
        bad.append("reasoning_tokens")
    return prompt, completion, total, reasoning


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_completion(raw: bytes | str | Mapping[str, Any], latency: float | None,
                     request_id: str | None = None) -> Reply:
    """The fields batchframe needs from a chat.completion body (bytes, or an already parsed dict)."""
    try:
        data = raw if isinstance(raw, Mapping) else loads(raw)
        choice = data["choices"][0]
        message = choice.get("message")
        if message is None:
            message = {}
        content = message.get("content")
        if isinstance(content, list):  # some servers answer with content parts
            content = "".join(p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str))
        if content is not None and not isinstance(content, str):
            raise TypeError("content is not text")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        return Reply(kind="decode", status=200, code="bad_response",
                     message=f"unreadable response body ({type(exc).__name__})",
                     request_id=request_id, latency_s=latency)
    bad: list[str] = []
    prompt, completion, total, reasoning = _usage(data, bad)
    finish_reason = _text(choice.get("finish_reason"))
    if finish_reason is not None:  # other servers' words mapped to OpenAI's; others kept as sent
        finish_reason = _FINISH.get(finish_reason, finish_reason)
    return Reply(
        kind="ok", status=200,
        response=content,  # None for a null content (an empty answer: the run counts those)
        reasoning_content=_text(message.get("reasoning_content")) or _text(message.get("reasoning")),
        finish_reason=finish_reason,
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=total, reasoning_tokens=reasoning,
        model=_text(data.get("model")),
        request_id=request_id or _text(data.get("id")),
        latency_s=latency,
        bad_usage=tuple(bad),
        **outputs(data["choices"]),  # every choice (n), logprobs, tool calls
    )


def _scalar(value: Any) -> str | None:
    if value is None or isinstance(value, (Mapping, list)):
        return None
    return str(value)


def error_reply(status: int, raw: bytes | str | Mapping[str, Any] | None, headers: Mapping[str, str] | None,
                latency: float | None, fallback_message: str | None = None) -> Reply:
    """The ``http`` reply for an error answer: status, the provider's code and message (OpenAI /
    DashScope ``{"error": {...}}``, flat ``{"code", "message"}``, FastAPI ``{"detail"}`` or plain
    text), Retry-After and the request id."""
    body: Any = raw
    if isinstance(raw, (bytes, bytearray, str)):
        try:
            body = loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else raw
    code = message = request_id = None
    if isinstance(body, Mapping):
        err = body.get("error", body)
        if isinstance(err, Mapping):
            code, message = _scalar(err.get("code")), _scalar(err.get("message"))
            request_id = _text(err.get("request_id"))
        elif isinstance(err, str):
            message = err
        code = code or _scalar(body.get("code"))
        detail = body.get("detail")
        message = message or _scalar(body.get("message")) or (
            detail if isinstance(detail, str) else orjson.dumps(detail).decode() if detail else None)
        request_id = _text(body.get("request_id")) or request_id
    elif isinstance(body, str) and body.strip():
        message = body.strip()
    retry_after = None
    if headers is not None:
        request_id = request_id or headers.get("x-request-id") or headers.get("x-dashscope-request-id")
        retry_after = parse_retry_after(headers)
    if message is not None and len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "..."
    return Reply(kind="http", status=status, code=code, message=message or fallback_message or f"HTTP {status}",
                 retry_after=retry_after, request_id=request_id, latency_s=latency)
