"""The retry policy: constants and two small pure functions (should we retry? how long to wait?).

The engine is the only owner of retries (the OpenAI client is built with ``max_retries=0``), so every
attempt passes through here and through the limiter.

Backoff is exponential with **full jitter**: ``rand() * min(cap, base * 2**(attempts - 1))``. Full jitter
spreads the retries of thousands of requests that failed in the same second evenly over the whole window,
which is what relieves a throttled endpoint fastest (see the AWS Architecture blog, "Exponential Backoff
And Jitter"); decorrelated jitter does about as well but needs the previous sleep as state, and these
functions stay pure, computed from the attempt count alone. Throttling errors start from a longer base
(``throttle_base_s``): DashScope's rate limits typically recover within a minute. A server's Retry-After,
when present, replaces the computed wait unjittered (never shorter than asked), capped at
``retry_after_cap_s``.

Time is never read here except as a parameter: ``rand`` and ``now`` are passed in, so tests never sleep.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime
import email.utils
import math
import re
import time
from typing import Callable, Mapping

from .taxonomy import Action, Verdict



@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry. Frozen; change it with ``dataclasses.replace``."""

    max_attempts: int = 12  # total attempts per request, all retryable errors together
    max_timeouts: int = 3  # attempts that may end in a client timeout (each may have been served and billed)
    base_s: float = 0.5  # first backoff
    throttle_base_s: float = 1.0  # first backoff after a throttling error (the limiter also cuts concurrency)
    cap_s: float = 30.0  # backoff cap
    retry_after_cap_s: float = 600.0  # a server's Retry-After is honoured up to this

    def __post_init__(self) -> None:
        for name in ("max_attempts", "max_timeouts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        for name in ("base_s", "throttle_base_s", "cap_s", "retry_after_cap_s"):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value <= 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if self.base_s > self.cap_s or self.throttle_base_s > self.cap_s:
            raise ValueError(f"base_s ({self.base_s}) and throttle_base_s ({self.throttle_base_s}) "
                             f"must not exceed cap_s ({self.cap_s})")


def should_retry(verdict: Verdict, *, attempts: int, timeouts: int, policy: RetryPolicy) -> bool:
    """Whether to send the request again after the attempt just classified as ``verdict``.

    ``attempts`` counts the attempts made so far (including this one), ``timeouts`` those of them that
    ended in a client timeout (including this one, if it did). Once ``max_timeouts`` is reached nothing
    is retried, whatever the error: the next attempt could time out too, and a timed-out call may have
    been served and billed.
    """
    if attempts < 1 or timeouts < 0 or timeouts > attempts:
        raise ValueError(f"need attempts >= 1 and 0 <= timeouts <= attempts, got {attempts}, {timeouts}")
    if verdict.action is not Action.RETRY:
        return False
    return attempts < policy.max_attempts and timeouts < policy.max_timeouts


def backoff_s(verdict: Verdict, *, attempts: int, policy: RetryPolicy, retry_after: float | None,
              rand: Callable[[], float]) -> float:
    """Seconds to wait before the next attempt, ``attempts`` having been made (>= 1).

    ``rand`` returns a float in [0, 1) (``random.random``); it is called only when no usable
    Retry-After is given. The result is never negative and never above the relevant cap.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    if retry_after is not None and not math.isnan(retry_after) and retry_after >= 0:
        return float(min(retry_after, policy.retry_after_cap_s))
    base = policy.throttle_base_s if verdict.throttle else policy.base_s
    ceiling = min(policy.cap_s, base * 2.0 ** min(attempts - 1, 64))
    return ceiling * min(max(float(rand()), 0.0), 1.0)


# An HTTP delay-seconds value (RFC 9110 says digits only; decimals are accepted, as openai-python does).
# ASCII only: str.isdigit() and float() also accept "²", Arabic-Indic digits, "1_0", "nan", "inf".
_SECONDS = re.compile(r"\s*([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*", re.ASCII)


def _seconds(value: str) -> float | None:
    m = _SECONDS.fullmatch(value)
    if m is None:
        return None
    seconds = float(m.group(2))
    if not math.isfinite(seconds) or (m.group(1) == "-" and seconds != 0):
        return None
    return seconds


def _http_date(value: str, now: float) -> float | None:
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    try:  # parsedate_tz lets "32 Sep" through; datetime does not
        datetime.datetime(*parsed[:6])
    except (ValueError, OverflowError, TypeError):
        return None
    when = calendar.timegm(parsed[:6] + (0, 0, 0)) - (parsed[9] or 0)  # HTTP dates are GMT
    delay = when - now
    return float(delay) if delay >= 0 else None


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait, or None when it does not say (or says nonsense).

    Reads ``retry-after-ms`` (milliseconds) first, then ``retry-after`` as seconds (int or decimal) or
    as an HTTP date, relative to ``now`` (epoch seconds, default ``time.time()``). Header names are
    case-insensitive. Garbage, negative values and dates in the past give None.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    ms = lowered.get("retry-after-ms")
    if ms is not None:
        seconds = _seconds(ms)
        if seconds is not None:
            return seconds / 1000.0
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    if _SECONDS.fullmatch(value) is not None:  # a negative number: not a date either
        return None
    return _http_date(value, time.time() if now is None else now)
