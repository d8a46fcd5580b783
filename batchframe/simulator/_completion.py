"""Token counting and the OpenAI ``chat.completion`` answer body."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any

from ._responder import message_text, reasoning_text

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
_MESSAGE_OVERHEAD = 4
_PRIMING = 3
_IMAGE_TOKENS = 258


def count_tokens(text: str) -> int:
    """About one token per 4 Latin characters and one per CJK character."""
    cjk = len(_CJK.findall(text))
    return cjk + math.ceil((len(text) - cjk) / 4)


def truncate(text: str, tokens: int) -> str:
    """The longest prefix of ``text`` that :func:`count_tokens` counts as at most ``tokens``."""
    cost = 0.0
    for i, char in enumerate(text):
        cost += 1.0 if _CJK.match(char) else 0.25
        if math.ceil(cost) > tokens:
            return text[:i]
    return text


def prompt_tokens(messages: list[Any]) -> int:
    """Prompt tokens of a message list: text, a flat cost per image part, a few tokens per message."""
    total = _PRIMING
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        images = sum(1 for part in content if isinstance(part, dict) and part.get("type") != "text") \
            if isinstance(content, list) else 0
        total += _MESSAGE_OVERHEAD + count_tokens(message_text(content)) + images * _IMAGE_TOKENS
    return total


def split_tokens(text: str) -> list[str]:
    """``text`` cut into the pieces :func:`count_tokens` counts (as many pieces as it counts tokens)."""
    pieces: list[str] = []
    cost, current = 0.0, -1
    for char in text:
        cost += 1.0 if _CJK.match(char) else 0.25
        index = math.ceil(cost) - 1
        if index != current:
            pieces.append(char)
            current = index
        else:
            pieces[-1] += char
    return pieces


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int


@dataclass(frozen=True)
class Fitted:
    """One choice's answer and reasoning after ``max_tokens``, with its token counts."""

    answer: str
    reasoning: str
    finish_reason: str
    completion_tokens: int
    reasoning_tokens: int


def max_tokens(body: dict[str, Any]) -> int | None:
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None:
            return int(value)
    return None


def fit(body: dict[str, Any], answer: str, *, thinking: bool, reasoning_of: str | None = None) -> Fitted:
    """Cut ``answer`` (and its reasoning, when thinking) to the request's ``max_tokens``.

    ``max_tokens`` caps reasoning plus answer: when the reasoning alone reaches it, the answer is
    empty and ``finish_reason`` is "length". The reasoning is that of ``reasoning_of`` (default: the
    answer itself).
    """
    limit = max_tokens(body)
    reasoning = reasoning_text(body, answer if reasoning_of is None else reasoning_of) if thinking else ""
    budget = body.get("thinking_budget")
    if reasoning and isinstance(budget, int) and not isinstance(budget, bool) and budget > 0:
        reasoning = truncate(reasoning, budget)
    reasoning_tokens = count_tokens(reasoning)
    finish = "stop"
    if limit is not None and reasoning_tokens >= limit:
        reasoning, reasoning_tokens, answer, finish = truncate(reasoning, limit), limit, "", "length"
    elif limit is not None and count_tokens(answer) > limit - reasoning_tokens:
        answer, finish = truncate(answer, limit - reasoning_tokens), "length"
    return Fitted(answer, reasoning, finish, reasoning_tokens + count_tokens(answer), reasoning_tokens)


def completion_body(body: dict[str, Any], choices: list[dict[str, Any]], usage: Usage, *, thinking: bool,
                    completion_id: str) -> dict[str, Any]:
    """The ``chat.completion`` body with ``choices`` and ``usage``."""
    usage_body: dict[str, Any] = {"prompt_tokens": usage.prompt_tokens,
                                  "completion_tokens": usage.completion_tokens,
                                  "total_tokens": usage.prompt_tokens + usage.completion_tokens}
    if thinking:
        usage_body["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return {
        "id": f"chatcmpl-{completion_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": choices,
        "usage": usage_body,
    }
