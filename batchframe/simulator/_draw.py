"""Deterministic per-attempt randomness: every draw is a hash of (seed, request body, attempt number)."""

from __future__ import annotations

import math
from hashlib import blake2b
from statistics import NormalDist
from typing import Any

import orjson

from ._config import FAULTS, SimConfig

_UNIT = 2.0 ** -53
_NORMAL = NormalDist()
_LOGNORMAL_SIGMA = 1.0


def body_key(body: dict[str, Any]) -> bytes:
    """A 16-byte digest of the canonical (sorted-key) JSON of a request body."""
    return blake2b(orjson.dumps(body, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()


class Draw:
    """The random numbers of one attempt, reproducible from (seed, body key, attempt number)."""

    __slots__ = ("_digest",)

    #: slot indices of the uniform numbers
    FAULT, LATENCY, HANG = 0, 1, 2

    def __init__(self, seed: int, key: bytes, attempt: int) -> None:
        self._digest = blake2b(f"{seed}:{attempt}:".encode() + key, digest_size=64).digest()

    def uniform(self, slot: int) -> float:
        """A float in [0, 1) (slots 0-5)."""
        chunk = int.from_bytes(self._digest[8 * slot: 8 * slot + 8], "big")
        return (chunk >> 11) * _UNIT

    @property
    def request_id(self) -> str:
        """A UUID-shaped id taken from the last 16 bytes of the draw."""
        h = self._digest[48:].hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def fault(self, config: SimConfig) -> str | None:
        """Which random fault (a name from FAULTS) hits this attempt, if any."""
        u = self.uniform(self.FAULT)
        edge = 0.0
        for name, rate in zip(FAULTS, config.fault_rates(), strict=True):
            edge += rate
            if u < edge:
                return name
        return None

    def hangs(self, config: SimConfig) -> bool:
        return self.uniform(self.HANG) < config.hang_rate

    def latency(self, config: SimConfig) -> float:
        """The simulated queue wait in seconds (0 when ``latency_s`` is 0)."""
        mean = config.latency_s
        if mean == 0:
            return 0.0
        u = self.uniform(self.LATENCY)
        if config.latency == "fixed":
            wait = mean + config.latency_jitter_s * (2 * u - 1)
        elif config.latency == "uniform":
            wait = 2 * mean * u
        elif config.latency == "exponential":
            wait = -mean * math.log1p(-u)
        else:  # lognormal with the given mean
            mu = math.log(mean) - _LOGNORMAL_SIGMA ** 2 / 2
            wait = math.exp(mu + _LOGNORMAL_SIGMA * _NORMAL.inv_cdf(min(max(u, 1e-12), 1 - 1e-12)))
        return min(wait, config.latency_max_s)
