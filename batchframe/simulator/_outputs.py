"""Everything a completion returns: ``n`` choices, logprobs, tool calls, and JSON answers to repair.

- ``n=k``: k choices. With the default responder, each choice after the first picks another label with
  probability ``sample_flip_rate`` (drawn per choice), so a majority vote over the k answers is
  meaningful; a custom responder answers every choice alike. Usage counts all choices.
- ``logprobs=True`` (``top_logprobs=m``): OpenAI's ``choices[i].logprobs.content``, one entry per answer
  token (the pieces :func:`~._completion.count_tokens` counts); the first token's probability is the
  lexicon's confidence in the label (lower for a choice that picked another label).
- ``tools`` (and ``tool_choice`` not "none"): a ``tool_calls`` answer, arguments filled from the tool's
  parameters schema, content null, finish_reason "tool_calls". ``no_tool_marker`` in the messages makes
  ``tool_choice`` "auto" (or absent) answer in text instead; ``bad_arguments_marker`` makes the
  arguments invalid JSON.
- JSON mode: ``bad_json_marker`` in a user message makes the answer unparseable, ``bad_schema_marker``
  valid JSON that breaks its schema, once per occurrence of the marker: each assistant message after
  the marked message counts as one repair already made, so ``[[badjson]]`` is fixed by one repair turn
  (the answer and the error appended) and ``[[badjson]][[badjson]]`` by two. A repaired answer answers
  the marked message, not the repair turn's text.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson

from ._completion import Fitted, Usage, completion_body, fit, split_tokens
from ._config import SimConfig
from ._responder import (LABELS, break_schema, default_responder, fill_arguments, json_mode,
                         last_user_text, message_text, sentiment)
from ._subdraw import token, unit

MAX_TOP_LOGPROBS = 20
_TOOL_CHOICES = ("auto", "none", "required")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_output_params(body: dict[str, Any], config: SimConfig) -> str | None:
    """What is wrong with ``n``, ``logprobs``, ``top_logprobs``, ``tools``, ``tool_choice`` (None: fine)."""
    n = body.get("n")
    if n is not None and (not _is_int(n) or n < 1):
        return "The parameter `n` must be a positive integer."
    if n is not None and n > config.max_n:
        return f"Range of n should be [1, {config.max_n}]"
    logprobs, top = body.get("logprobs"), body.get("top_logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        return "The parameter `logprobs` must be a boolean."
    if top is not None and (not _is_int(top) or not 0 <= top <= MAX_TOP_LOGPROBS):
        return f"Range of top_logprobs should be [0, {MAX_TOP_LOGPROBS}]"
    if top is not None and logprobs is not True:
        return "The parameter `top_logprobs` requires `logprobs` to be true."
    return _check_tools(body.get("tools"), body.get("tool_choice"))


def _check_tools(tools: Any, choice: Any) -> str | None:
    if tools is None:
        return None if choice is None else "The parameter `tool_choice` is only allowed with `tools`."
    if not isinstance(tools, list) or not tools or not all(
            isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict)
            and isinstance(t["function"].get("name"), str) and t["function"]["name"] for t in tools):
        return "The parameter `tools` must be a non-empty list of {type: function, function: {name, ...}}."
    if any(not isinstance(t["function"].get("parameters", {}), dict) for t in tools):
        return "The parameter `tools[].function.parameters` must be a JSON schema object."
    if choice is None or choice in _TOOL_CHOICES:
        return None
    names = {t["function"]["name"] for t in tools}
    function = choice.get("function") if isinstance(choice, dict) else None
    if not isinstance(function, dict) or function.get("name") not in names:
        return "The parameter `tool_choice` must be auto, none, required or name one of the `tools`."
    return None


def break_json(answer: str) -> str:
    """``answer`` made unparseable (a trailing comma inside the object)."""
    stripped = answer.rstrip()
    return f"{stripped[:-1]},}}" if stripped.endswith("}") else "{" + answer


class Composer:
    """Builds the ``chat.completion`` body answering a request that passed every rule."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.responder: Callable[[dict[str, Any]], str] = config.responder or default_responder

    def answer(self, body: dict[str, Any], *, seed: int, key: bytes, attempt: int, thinking: bool,
               prompt: int, completion_id: str) -> tuple[dict[str, Any], Usage]:
        """The answer body and its usage; every draw comes from (seed, key, attempt)."""
        messages = body["messages"]
        text = "\n".join(message_text(m.get("content")) for m in messages)
        answer_body, breaker = self._repair(body)
        prompt_text = last_user_text(answer_body["messages"])
        label, confidence, _ = sentiment(prompt_text)
        tool = self._tool(body, text)
        base = self.responder(answer_body) if tool is None else ""
        choices, completion_tokens, reasoning_tokens = [], 0, 0
        for i in range(body.get("n") or 1):
            pick = label
            if i and self.config.responder is None and \
                    unit(seed, key, attempt, f"flip:{i}") < self.config.sample_flip_rate:
                others = [other for other in LABELS if other != label]
                pick = others[int(unit(seed, key, attempt, f"other:{i}") * len(others))]
            if tool is not None:
                message, fitted = self._tool_call(body, tool, text, prompt_text, pick, thinking,
                                                  call_id=token(seed, key, attempt, f"call:{i}", 24))
                logprobs = None
            else:
                content = base if pick == label else default_responder(answer_body, pick)
                fitted = fit(body, breaker(content) if breaker else content, thinking=thinking)
                message = {"role": "assistant", "content": fitted.answer}
                certainty = confidence if pick == label else 1 - confidence
                logprobs = self._logprobs(body, fitted.answer, certainty, (seed, key, attempt, i))
            if thinking:
                message["reasoning_content"] = fitted.reasoning
            choices.append({"index": i, "message": message, "finish_reason": fitted.finish_reason,
                            "logprobs": logprobs})
            completion_tokens += fitted.completion_tokens
            reasoning_tokens += fitted.reasoning_tokens
        usage = Usage(prompt, completion_tokens, reasoning_tokens)
        return completion_body(body, choices, usage, thinking=thinking, completion_id=completion_id), usage

    def _repair(self, body: dict[str, Any]) -> tuple[dict[str, Any], Callable[[str], str] | None]:
        """(the body to answer, how to break the answer or None) for the bad-JSON markers."""
        if json_mode(body) is None:
            return body, None
        config, messages = self.config, body["messages"]
        markers = ((config.bad_json_marker, break_json), (config.bad_schema_marker, break_schema))
        for index in range(len(messages) - 1, -1, -1):
            if messages[index].get("role") != "user":
                continue
            text = message_text(messages[index].get("content"))
            for marker, breaker in markers:
                if marker and marker in text:
                    repairs = sum(1 for m in messages[index + 1:] if m.get("role") == "assistant")
                    answer_body = {**body, "messages": messages[:index + 1]} if repairs else body
                    return answer_body, breaker if text.count(marker) > repairs else None
        return body, None

    def _tool(self, body: dict[str, Any], text: str) -> dict[str, Any] | None:
        """The function a tool-call answer calls, or None for a text answer."""
        tools, choice = body.get("tools"), body.get("tool_choice")
        if not tools or choice == "none":
            return None
        functions = [t["function"] for t in tools]
        if isinstance(choice, dict):
            return next(f for f in functions if f["name"] == choice["function"]["name"])
        marker = self.config.no_tool_marker
        if choice in (None, "auto") and marker and marker in text:
            return None
        return functions[0]

    def _tool_call(self, body: dict[str, Any], function: dict[str, Any], text: str, prompt_text: str,
                   label: str, thinking: bool, *, call_id: str) -> tuple[dict[str, Any], Fitted]:
        arguments = fill_arguments(function.get("parameters"), prompt_text, label)
        encoded = orjson.dumps(arguments).decode()
        marker = self.config.bad_arguments_marker
        if marker and marker in text:
            encoded = encoded[:-1]  # the closing brace missing: not valid JSON
        fitted = fit(body, encoded, thinking=thinking)
        finish = "tool_calls" if fitted.finish_reason == "stop" else fitted.finish_reason
        call = {"id": f"call_{call_id}", "type": "function",
                "function": {"name": function["name"], "arguments": fitted.answer}}
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        return message, Fitted(fitted.answer, fitted.reasoning, finish, fitted.completion_tokens,
                               fitted.reasoning_tokens)

    @staticmethod
    def _logprobs(body: dict[str, Any], answer: str, certainty: float,
                  where: tuple[int, bytes, int, int]) -> dict[str, Any] | None:
        """OpenAI's ``logprobs`` object for ``answer`` when the request asks for it."""
        if body.get("logprobs") is not True:
            return None
        seed, key, attempt, choice = where
        top = body.get("top_logprobs") or 0
        content = []
        for j, piece in enumerate(split_tokens(answer)):
            u = unit(seed, key, attempt, f"logprob:{choice}:{j}")
            p = min(max(certainty * (0.9 + 0.1 * u) if j == 0 else 1 - 0.2 * u, 1e-6), 1.0)
            content.append({"token": piece, "logprob": round(math.log(p), 6),
                            "bytes": list(piece.encode()), "top_logprobs": _alternatives(piece, p, top)})
        return {"content": content, "refusal": None}


def _alternatives(piece: str, p: float, count: int) -> list[dict[str, Any]]:
    """The ``count`` likeliest tokens at a position: the chosen one first, then lesser variants."""
    if count == 0:
        return []
    variants: list[str] = []
    for candidate in (piece.upper(), piece.capitalize(), piece.lower(), f" {piece.strip()}", piece[::-1],
                      f"{piece}.", piece * 2):
        if candidate != piece and candidate not in variants:
            variants.append(candidate)
    variants += [f"{piece}{k}" for k in range(count)]
    entries = [{"token": piece, "logprob": round(math.log(p), 6), "bytes": list(piece.encode())}]
    for k, variant in enumerate(variants[:count - 1], start=1):
        share = max((1 - p) * 0.5 ** k, 1e-12)
        entries.append({"token": variant, "logprob": round(math.log(share), 6),
                        "bytes": list(variant.encode())})
    return sorted(entries, key=lambda entry: -entry["logprob"])
