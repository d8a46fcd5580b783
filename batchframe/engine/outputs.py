"""What a completion returns beyond the first answer's text: every choice (``n``), the tokens'
log-probabilities (``logprobs``), tool calls (``tools``), read from a parsed ``chat.completion`` body.

Shared by every wire and by Batch File result lines (through ``completion``). Nothing here raises on
a malformed body: a part that is not what OpenAI's shape says is left out (None), never guessed.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import orjson


def _text(message: Any) -> str | None:
    if not isinstance(message, Mapping):
        return None
    content = message.get("content")
    if isinstance(content, list):  # some servers answer with content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return content if isinstance(content, str) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _tokens(entries: Any, top: bool) -> list | None:
    if not isinstance(entries, list):
        return None
    out = []
    for e in entries:
        if not isinstance(e, Mapping) or not isinstance(e.get("token"), str):
            continue
        item: dict = {"token": e["token"], "logprob": _number(e.get("logprob"))}
        if top:
            item["top_logprobs"] = _tokens(e.get("top_logprobs"), False) or []
        out.append(item)
    return out


def _calls(message: Any) -> list | None:
    calls = message.get("tool_calls") if isinstance(message, Mapping) else None
    if not isinstance(calls, list) or not calls:
        return None
    out = []
    for c in calls:
        fn = c.get("function") if isinstance(c, Mapping) else None
        if not isinstance(fn, Mapping):
            continue
        args = fn.get("arguments")
        out.append({"id": c.get("id") if isinstance(c.get("id"), str) else None,
                    "name": fn.get("name") if isinstance(fn.get("name"), str) else None,
                    "arguments": args if isinstance(args, str) else orjson.dumps(args).decode()})
    return out or None


def outputs(choices: list) -> dict:
    """``responses`` (every choice's text, when there are several), ``logprobs`` (per choice, when the
    server sent them), ``tool_calls`` (the first choice's, as JSON text) for a Reply."""
    out: dict[str, Any] = {}
    if len(choices) > 1:
        out["responses"] = tuple(_text(c.get("message")) if isinstance(c, Mapping) else None for c in choices)
    lp = [(c.get("logprobs") or {}).get("content") if isinstance(c, Mapping) and isinstance(c.get("logprobs"), Mapping)
          else None for c in choices]
    if any(x is not None for x in lp):
        out["logprobs"] = [_tokens(x, True) or [] for x in lp]
    first = choices[0].get("message") if isinstance(choices[0], Mapping) else None
    calls = _calls(first)
    if calls is not None:
        out["tool_calls"] = orjson.dumps(calls).decode()
    return out


def parse_arguments(tool_calls: str | None) -> list | None:
    """A frame's view of a ``tool_calls`` cell: the list, each call's arguments parsed where they are
    JSON (kept as the text the model wrote where they are not)."""
    if tool_calls is None:
        return None
    calls = orjson.loads(tool_calls)
    for call in calls:
        try:
            call["arguments"] = orjson.loads(call["arguments"])
        except (orjson.JSONDecodeError, TypeError):
            pass
    return calls
