"""The request rate as the server sees it: an even pacer, and the rate it paces at.

The API counts requests per sliding second (1,000 QPS per account). A token bucket that lets a burst
out and a loop that starts calls in batches both bunch sends, and bunched sends exceed the cap in
some second even when the average is below it. ``Pacer`` spaces grants evenly (GCRA, the "virtual
scheduling" form of a leaky bucket): one grant every ``1 / rate`` seconds, ``burst`` at most at once.
A busy loop wakes up late, and grants forgiven then are gone: on the benchmark's loaded loop a pacer
set to 388/s sent 370-380. So the grants due while a wake-up was late (up to ``CATCH_UP_S`` of them)
are made up after it, at most twice the rate and ``burst`` at a time, and a log of the last second's
grants keeps every sliding second under ``rate + burst`` all the same. The pacer lives where calls
start (the transport's event loop) so nothing between it and the socket can bunch them again.

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
from collections import deque
from typing import Callable

Clock = Callable[[], float]

# Of the API's cap, what the pacer may use: 2 % stays free for sends that leave evenly and arrive
# less so (network and the server's own loop), with the burst inside it too.
_HEADROOM = 0.02
# How much of a late wake-up's lateness is made up (more is lost, as before: a stall that long is
# not the loop being busy, and its grants sent at once would be a bunch).
CATCH_UP_S = 0.1


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
    """Grants spaced ``1 / rate`` apart, up to ``burst`` at once after a pause, and never more than
    ``rate + burst`` in a sliding second. ``rate`` None: no limit."""

    def __init__(self, rate: float | None, *, burst: float = 1.0, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._interval, self._burst, self._cap = 0.0, 1.0, math.inf
        self.set_rate(rate, burst)
        self._tat = self._fast_tat = clock()  # when the next grant is due: on the rate, at twice it
        self._due: float | None = None  # when the last ask that had to wait was told to come back
        self._recent: deque[float] = deque()  # the grants of the last second

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
        self._cap = math.inf if rate is None else rate + self._burst

    def delay(self) -> float:
        """0.0 with one grant taken, else the seconds until the next grant (nothing taken)."""
        interval = self._interval
        if not interval:
            return 0.0
        now = self._clock()
        due = self._due
        # Behind the schedule since a wake-up that came late: the grants due since then (up to
        # CATCH_UP_S of them) are still owed. Otherwise an idle spell earns no more than the burst.
        start = now if due is None else min(now, max(due, now - CATCH_UP_S))
        tat = self._tat if self._tat > start else start
        fast = self._fast_tat if self._fast_tat > now else now
        span = (self._burst - 1.0) * interval
        early = max(tat - now - span, fast - now - span / 2)
        recent = self._recent
        while recent and recent[0] <= now - 1.0:
            recent.popleft()
        if len(recent) + 1 >= self._cap:
            early = max(early, recent[0] + 1.0 - now)
        if early > 1e-9:
            self._due = now + early
            return early
        self._tat, self._fast_tat = tat + interval, fast + interval / 2
        recent.append(now)
        return 0.0


class AdaptiveRate:
    """The send rate: ``target`` until a rate-type 429, then cut by ``decrease`` (at most once per
    ``cooldown_s``), and back up at ``recover_per_s`` of the target per second once ``quiet_s`` has
    passed without pushback. Never below ``target * floor``."""

    # A cut of 5 %, held until 1 s passes quietly, then a climb of 5 % of the target per second:
    # a lone 429 costs under 0.1 s of sending (a 15 % cut held 2 s cost 0.5 s, and lone 429s came
    # every ~10 s on the ceiling benchmark: 86-87 % of the bound, against 91-93 % with these).
    # Pushback that goes on is cut again every cooldown: 5 s of it take the rate to 77 %.
    def __init__(self, target: float, *, decrease: float = 0.95, cooldown_s: float = 1.0, quiet_s: float = 1.0,
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
