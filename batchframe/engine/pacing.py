"""The request rate as the server sees it: an even pacer, and the rate it paces at.

The API counts requests per sliding second (1,000 QPS per account). A token bucket that lets a burst
out and a loop that starts calls in batches both bunch sends, and bunched sends exceed the cap in
some second even when the average is below it. ``Pacer`` spaces grants evenly (GCRA, the "virtual
scheduling" form of a leaky bucket): at most one grant every ``1 / rate`` seconds, with ``burst``
grants of catch-up after a late wake-up, so any window of ``w`` seconds holds at most
``rate * w + burst`` grants. It lives where calls start (the transport's event loop) so nothing
between the pacer and the socket can bunch them again.

``AdaptiveRate`` is the rate itself: the target (``window_safe_rate(qps)``) until the server says the
rate is too high (a rate-type 429), then a small multiplicative cut, at most once per cooldown (the
429s of one bunch count once), and a linear climb back to the target after a quiet spell. A rate
limit is answered by slowing the rate, not by halving the calls in flight: at a 10 s queue wait,
10,000 calls in flight take 10 s to refill once cut.

Both are owned by one thread each (``Pacer``: the loop; ``AdaptiveRate``: the engine's dispatcher),
take no locks, never sleep, and read an injected clock.
"""

from __future__ import annotations

import math
import time
from typing import Callable

Clock = Callable[[], float]

# Of the API's cap, what the pacer may use: 2 % stays free for sends that leave evenly and arrive
# less so (network and the server's own loop), with the burst inside it too.
_HEADROOM = 0.02


def _rate(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def window_safe(qps: float) -> tuple[float, float]:
    """``(rate, burst)`` whose worst sliding second, ``rate + burst``, stays 2 % under ``qps``."""
    qps = _rate("qps", qps)
    # 10 ms of sends, to catch up after a late wake-up of a busy loop; at least 2 from 50 QPS on (a
    # timer that fires up to 1 ms late would otherwise lose up to 1 ms of every interval)
    burst = max(1.0, min(2.0, qps / 25.0), qps / 100.0)
    return max(qps * (1 - _HEADROOM) - burst, qps / 2.0), burst


class Pacer:
    """Grants spaced ``1 / rate`` apart, up to ``burst`` at once after a pause. ``rate`` None: no limit."""

    def __init__(self, rate: float | None, *, burst: float = 1.0, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._interval, self._burst = 0.0, 1.0
        self.set_rate(rate, burst)
        self._tat = clock()  # theoretical arrival time of the next grant

    @property
    def rate(self) -> float | None:
        return 1.0 / self._interval if self._interval else None

    @property
    def burst(self) -> float:
        return self._burst

    def set_rate(self, rate: float | None, burst: float | None = None) -> None:
        """From now on (grants already given keep their spacing)."""
        if burst is not None:
            if _rate("burst", burst) < 1:
                raise ValueError(f"burst must be >= 1, got {burst!r}")
            self._burst = float(burst)
        self._interval = 0.0 if rate is None else 1.0 / _rate("rate", rate)

    def delay(self) -> float:
        """0.0 with one grant taken, else the seconds until the next grant (nothing taken)."""
        interval = self._interval
        if not interval:
            return 0.0
        now = self._clock()
        tat = self._tat if self._tat > now else now
        early = tat - now - (self._burst - 1.0) * interval  # > 0: this grant would come too soon
        if early > 1e-9:
            return early
        self._tat = tat + interval
        return 0.0


class AdaptiveRate:
    """The send rate: ``target`` until a rate-type 429, then cut by ``decrease`` (at most once per
    ``cooldown_s``), and back up at ``recover_per_s`` of the target per second once ``quiet_s`` has
    passed without pushback. Never below ``target * floor``."""

    def __init__(self, target: float, *, decrease: float = 0.85, cooldown_s: float = 1.0, quiet_s: float = 2.0,
                 recover_per_s: float = 0.05, floor: float = 0.05, clock: Clock = time.monotonic) -> None:
        self._target = _rate("target", target)
        if not 0 < decrease < 1 or not 0 < floor <= 1:
            raise ValueError("decrease must be in (0, 1) and floor in (0, 1]")
        self._decrease, self._cooldown, self._quiet = float(decrease), float(cooldown_s), float(quiet_s)
        self._recover = _rate("recover_per_s", recover_per_s) * self._target
        self._floor = self._target * floor
        self._clock = clock
        self._cut_to = self._target
        self._last_push = self._last_cut = -math.inf
        self.cuts = 0

    @property
    def target(self) -> float:
        return self._target

    @property
    def rate(self) -> float:
        if self._cut_to >= self._target:
            return self._target
        climbed = self._recover * max(0.0, self._clock() - self._last_push - self._quiet)
        return min(self._target, self._cut_to + climbed)

    def on_throttle(self) -> float:
        """A rate-type 429: cut (unless one cut already answered this bunch); returns the new rate."""
        now = self._clock()
        current = self.rate
        self._last_push = now
        if now - self._last_cut >= self._cooldown:
            self._last_cut = now
            self.cuts += 1
            current = max(self._floor, current * self._decrease)
        self._cut_to = current  # pushback holds the rate where it is until a quiet spell
        return current
