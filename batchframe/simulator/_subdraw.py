"""Named extra draws of one attempt: more random numbers from (seed, body key, attempt number, tag).

:class:`~batchframe.simulator._draw.Draw` holds the attempt's fault and latency numbers; what a
completion or a batch line needs beyond them (which label a sample picks, a token's logprob, whether a
failed line lands in the output file, the order of a batch's lines) is drawn here, one tag per use, so
adding a draw never shifts another.
"""

from __future__ import annotations

from hashlib import blake2b

_UNIT = 2.0 ** -53


def unit(seed: int, key: bytes, attempt: int, tag: str) -> float:
    """A float in [0, 1), reproducible from its arguments."""
    digest = blake2b(f"{seed}:{attempt}:{tag}:".encode() + key, digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) * _UNIT


def token(seed: int, key: bytes, attempt: int, tag: str, size: int = 12) -> str:
    """``size`` hex digits, reproducible from the arguments (ids of tool calls, batch lines)."""
    return blake2b(f"{seed}:{attempt}:{tag}:".encode() + key, digest_size=(size + 1) // 2).hexdigest()[:size]
