"""Request building: which parameters exist, the JSON body of each call, and its hash.

The request hash (``rid``) covers exactly what would be sent and where: the endpoint (base URL),
the model, the messages and every request parameter. Execution settings (workers, timeout,
progress) are not in it. The hash of a row is ``blake2b(prefix + messages_json)``, where the prefix
(everything but the messages) is serialised once per run: hashing a million rows costs one small
JSON dump per row. For one-turn text rows (``prompt_col=``/``template=``) ``text_rids`` does not
even build the messages: their JSON is a constant head, the escaped text, a constant tail.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Mapping, Sequence

import orjson

from ..exceptions import ConfigError

# OpenAI chat-completion parameters that pass through by name.
OPENAI_PARAMS = frozenset({
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed",
    "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
    "response_format", "tools", "tool_choice", "parallel_tool_calls", "user", "modalities",
    "reasoning_effort", "metadata", "service_tier", "prediction", "audio", "n",
})
# DashScope's own parameters: sent as top-level body fields (``extra_body`` in the SDK).
DASHSCOPE_PARAMS = frozenset({
    "enable_thinking", "thinking_budget", "top_k", "repetition_penalty", "enable_search",
    "search_options", "translation_options", "vl_high_resolution_images", "enable_code_interpreter",
    "incremental_output", "result_format",
})
REQUEST_PARAMS = OPENAI_PARAMS | DASHSCOPE_PARAMS

# Models that think unless told not to (thinking tokens are billed as output).
DEFAULT_THINKING_PREFIXES = ("qwen3.5-", "qwen3.6-")


def thinks_by_default(model: str) -> bool:
    return model.startswith(DEFAULT_THINKING_PREFIXES)


def check_params(params: Mapping[str, Any]) -> None:
    """Refuse unknown keywords (a typo must not become a run-stopping 400) and unsupported ones."""
    unknown = sorted(set(params) - REQUEST_PARAMS)
    if unknown:
        raise TypeError(
            f"unknown option(s) {', '.join(map(repr, unknown))}. Request parameters: "
            f"{', '.join(sorted(REQUEST_PARAMS))}; anything else goes in extra_body={{...}}."
        )
    if params.get("n", 1) != 1:
        raise ConfigError("n must be 1: batchframe keeps one answer per row (use dedupe=False and "
                          "repeat rows for repeated sampling)")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RequestSpec:
    """Everything in a request except the messages."""

    base_url: str
    model: str
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    endpoint: str | None = None  # what the hash calls the endpoint; default the base URL


    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError("model must be a non-empty string, e.g. model='qwen-plus'")
        if "messages" in self.params or "model" in self.params or "stream" in self.params:
            raise ConfigError("model, messages and stream cannot be set through parameters")
        try:
            orjson.dumps(dict(self.params))
        except TypeError as exc:
            raise ConfigError(f"request parameters must be JSON-serialisable: {exc}") from None

    @property
    def prefix(self) -> bytes:
        return orjson.dumps({"endpoint": self.endpoint or self.base_url.rstrip("/"), "model": self.model,
                             "params": dict(self.params)}, option=orjson.OPT_SORT_KEYS)

    def hasher(self):
        """A function ``messages -> rid`` bound to this spec's serialised prefix."""
        base = hashlib.blake2b(self.prefix, digest_size=16)
        dumps = orjson.dumps
        sort = orjson.OPT_SORT_KEYS

        def rid(messages: list) -> str:
            h = base.copy()
            h.update(dumps(messages, option=sort))
            return h.hexdigest()

        return rid

    def text_rids(self, texts: Sequence[Any], system: str | None) -> list[str | None]:
        """Per text: ``hasher()(user_messages(system, text))`` (None for None, and for a text that is not
        valid Unicode), bit for bit, without
        building the messages. The JSON of the messages is ``head + dumps(text) + tail``, both cut
        from orjson's own output around a marker, so the bytes hashed are the general path's."""
        general = self.hasher()
        marker = "\x00batchframe-text\x00"
        whole = orjson.dumps(user_messages(system, marker), option=orjson.OPT_SORT_KEYS)
        cut = orjson.dumps(marker)
        if whole.count(cut) != 1:  # the system prompt holds the marker: no split, the general path
            return [general(user_messages(system, t)) if t is not None else None for t in texts]
        head, tail = whole.split(cut)
        base = hashlib.blake2b(self.prefix, digest_size=16)
        base.update(head)
        copy, dumps = base.copy, orjson.dumps
        out: list[str | None] = []
        add = out.append
        for t in texts:
            if type(t) is str:
                h = copy()
                try:
                    h.update(dumps(t))
                except TypeError:  # not valid Unicode (a lone surrogate): no request, see rows.prepare
                    add(None)
                    continue
                h.update(tail)
                add(h.hexdigest())
            elif t is None:
                add(None)
            else:  # a str subclass: the general path decides what it serialises to
                try:
                    add(general(user_messages(system, t)))
                except TypeError:
                    add(None)
        return out

    def body(self, messages: list) -> dict:
        out = {"model": self.model, "messages": messages}
        out.update(self.params)
        return out


def user_messages(system: str | None, content: Any) -> list:
    """The messages of a one-turn row."""
    if system is None:
        return [{"role": "user", "content": content}]
    return [{"role": "system", "content": system}, {"role": "user", "content": content}]
