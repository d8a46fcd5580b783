"""One line of an output or error file: whose it is and what it says, judged on its own.

Every line is read by its own status, whatever file it came in (probes saw failed lines in the
output file with ``request_counts.failed`` 0): a ``status_code`` 200 with a body is an answer, parsed
by the chat wire's own parser; anything else is an error read from ``response.body.error``, the
body itself, or the line's ``error`` (``code``/``message``, or ``error_code``/``error_message``),
and classified by the chat calls' taxonomy. ``batch_expired`` (a line an expired batch never ran)
and a line in neither file are retryable; ``batch_cancelled`` lines are left pending.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..engine.taxonomy import Action, Verdict, classify
from ..records import Reply

EXPIRED, CANCELLED, MISSING_CODE = "batch_expired", "batch_cancelled", "batch_line_missing"
MISSING = Reply(kind="connection", code=MISSING_CODE,
                message="the line came back in neither the output file nor the error file")


def parse_answer(raw: bytes, request_id: str | None) -> Reply:
    """A chat.completion body as the chat wire reads it (the one place that names the parser)."""
    from ..engine.completion import parse_completion

    return parse_completion(raw, None, request_id)


def judge(raw: bytes) -> tuple[str | None, Reply]:
    """(custom_id, the line's reply) of one raw line; an unreadable line has custom_id None."""
    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, MISSING
    if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
        return None, MISSING
    response = line.get("response") if isinstance(line.get("response"), dict) else {}
    error = line.get("error") if isinstance(line.get("error"), dict) else None
    status, body = response.get("status_code"), response.get("body")
    request_id = response.get("request_id")
    if status == 200 and isinstance(body, dict) and not isinstance(body.get("error"), dict):
        return line["custom_id"], parse_answer(orjson.dumps(body), request_id or body.get("id"))
    return line["custom_id"], _error(status, body, error, request_id)


def _error(status: Any, body: Any, error: dict | None, request_id: str | None) -> Reply:
    found: dict = {}
    if isinstance(body, dict):
        found = body["error"] if isinstance(body.get("error"), dict) else body
        request_id = request_id or body.get("request_id")
    code = found.get("code") or found.get("error_code")
    message = found.get("message") or found.get("error_message")
    if error:
        code = code or error.get("code") or error.get("error_code")
        message = message or error.get("message") or error.get("error_message")
    status = status if isinstance(status, int) and not isinstance(status, bool) else 0
    return Reply(kind="http", status=status, code=str(code) if code else None,
                 message=str(message) if message else f"the batch line failed (status {status or 'unknown'})",
                 request_id=request_id if isinstance(request_id, str) else None)


def verdict_of(reply: Reply) -> Verdict:
    """What a failed line means (the chat taxonomy, plus the batch's own codes)."""
    code = (reply.code or "").casefold()
    if code in (EXPIRED, CANCELLED):
        return Verdict(Action.RETRY, code, False, None)
    return classify(reply)


def describe(reply: Reply) -> str:
    if reply.kind == "http":
        return f"{reply.status or ''} {reply.code or ''}: {reply.message or ''}".replace(" :", ":").strip()
    return reply.message or reply.kind
