"""Client-side concurrency: an AIMD limit on the calls in flight, on an injected clock.

Owned by one thread (the engine's dispatcher), no locks, never sleeps (so tests drive a fake clock).
The request rate is ``pacing``'s.

``AdaptiveConcurrency`` finds the in-flight level the endpoint tolerates, TCP-style: slow start
(+1 per success, i.e. doubling every round trip) until the first throttle, then additive increase
(+1 per ``limit`` successes, about +1 per round trip) and multiplicative decrease (x ``decrease``) on
throttling, at most once per ``cooldown_s`` so that a burst of 429s answering one window counts once.
"""

from __future__ import annotations

import math
import time
from typing import Callable

Clock = Callable[[], float]

class AdaptiveConcurrency:
    """AIMD concurrency limit with slow start. Single-threaded owner, no locks.

    ``limit`` is how many requests may be in flight; it always lies in ``[min_limit, max_limit]``.
    """

    def __init__(self, max_limit: int, *, initial: int | None = None, min_limit: int = 1,
                 decrease: float = 0.5, cooldown_s: float = 2.0, double_every_s: float = 2.0,
                 recover_per_s: float = 0.05, clock: Clock = time.monotonic) -> None:
        for name, value in (("max_limit", max_limit), ("min_limit", min_limit)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if min_limit > max_limit:
            raise ValueError(f"min_limit ({min_limit}) must not exceed max_limit ({max_limit})")
        if initial is None:
            initial = max(min_limit, min(max_limit, 32))
        if isinstance(initial, bool) or not isinstance(initial, int) or not min_limit <= initial <= max_limit:
            raise ValueError(f"initial must be an int in [{min_limit}, {max_limit}], got {initial!r}")
        if (isinstance(decrease, bool) or not isinstance(decrease, (int, float))
                or not 0 < decrease < 1):
            raise ValueError(f"decrease must be in (0, 1), got {decrease!r}")
        if (isinstance(cooldown_s, bool) or not isinstance(cooldown_s, (int, float))
                or not math.isfinite(cooldown_s) or cooldown_s < 0):
            raise ValueError(f"cooldown_s must be a finite number >= 0, got {cooldown_s!r}")
        for name, value in (("double_every_s", double_every_s), ("recover_per_s", recover_per_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        self._double_every = float(double_every_s)
        self._recover = float(recover_per_s) * max_limit  # requests regained per second after a cut
        self._start = clock()
        self._initial = initial
        self._cut_level = initial
        self._recover_from = self._start
        self._max = max_limit
        self._min = min_limit
        self._decrease = float(decrease)
        self._cooldown = float(cooldown_s)
        self._clock = clock
        self._limit = initial
        self._slow_start = True
        self._successes = 0  # since the last additive step
        self._last_cut: float | None = None
        self._cuts = 0

    @property
    def limit(self) -> int:
        """The limit now. Besides the per-success growth, it also grows with time, so that calls
        that take minutes (Batch Chat queues them up to an hour) do not keep it low for hours:
        in slow start it doubles every ``double_every_s``; after a cut, once ``cooldown_s`` has
        passed without pushback, it regains ``recover_per_s`` of ``max_limit`` per second."""
        if self._limit < self._max:
            now = self._clock()
            if self._slow_start:
                steps = min(64.0, max(0.0, now - self._start) / self._double_every)
                by_time = self._initial * 2.0 ** steps
            else:
                quiet = now - self._recover_from - self._cooldown  # recovery starts after a quiet spell
                by_time = self._cut_level + self._recover * max(0.0, quiet)
            if by_time > self._limit:
                self._limit = min(self._max, math.floor(by_time))
        return self._limit

    @property
    def max_limit(self) -> int:
        return self._max

    @property
    def min_limit(self) -> int:
        return self._min

    @property
    def throttled(self) -> int:
        """How many cuts happened (throttles merged by the cooldown count once)."""
        return self._cuts

    def on_success(self) -> None:
        """A request succeeded: grow (+1 in slow start, else +1 per ``limit`` successes)."""
        if self._limit >= self._max:
            self._successes = 0
            return
        if self._slow_start:
            self._limit += 1
            return
        self._successes += 1
        if self._successes >= self._limit:
            self._successes = 0
            self._limit += 1

    def on_throttle(self, decrease: float | None = None) -> None:
        """The endpoint pushed back: cut the limit (by ``decrease``, default the limiter's own), at
        most once per cooldown; ends slow start."""
        current = self.limit
        self._slow_start = False
        now = self._clock()
        self._recover_from, self._cut_level = now, current  # pushback holds the limit where it is
        if self._last_cut is not None and now - self._last_cut < self._cooldown:
            return
        self._last_cut = now
        self._cuts += 1
        self._successes = 0
        factor = self._decrease if decrease is None else decrease
        self._limit = max(self._min, min(self._max, math.floor(current * factor)))
        self._cut_level = self._limit
