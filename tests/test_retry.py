"""The retry policy: config validation, the schedule, the limits, and Retry-After parsing."""

from __future__ import annotations

import calendar
import dataclasses
import math

import pytest

from batchframe.engine.retry import RetryPolicy, backoff_s, parse_retry_after, should_retry
from batchframe.engine.taxonomy import Action, Verdict

PLAIN = Verdict(Action.RETRY, "InternalError", False, None)
THROTTLE = Verdict(Action.RETRY, "Throttling", True, None)
TIMEOUT = Verdict(Action.RETRY, "timeout", False, None)
FAIL = Verdict(Action.FAIL_ROW, "DataInspectionFailed", False, None)
STOP = Verdict(Action.STOP_RUN, "InvalidApiKey", False, "check the key")
DEFAULT = RetryPolicy()

# 2023-09-29 16:26:37 GMT, as in openai-python's own test of its Retry-After parsing.
NOW = float(calendar.timegm((2023, 9, 29, 16, 26, 37)))


# -- config --

@pytest.mark.parametrize("kwargs", [
    {"max_attempts": 0}, {"max_attempts": -1}, {"max_attempts": 2.5}, {"max_attempts": True},
    {"max_timeouts": 0}, {"base_s": 0}, {"base_s": -1.0}, {"base_s": math.nan},
    {"throttle_base_s": 0.0}, {"cap_s": math.inf}, {"retry_after_cap_s": 0},
    {"base_s": 2.0, "cap_s": 1.0}, {"throttle_base_s": 61.0}, {"cap_s": "60"},
])
def test_bad_policy_raises(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_policy_is_frozen_keyword_only_and_replaceable() -> None:
    with pytest.raises(TypeError):
        RetryPolicy(3)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.max_attempts = 3  # type: ignore[misc]
    assert dataclasses.replace(DEFAULT, max_attempts=3).max_attempts == 3
    with pytest.raises(ValueError):
        dataclasses.replace(DEFAULT, max_attempts=0)


# -- should_retry --

@pytest.mark.parametrize("verdict, attempts, timeouts, policy, expected", [
    (PLAIN, 1, 0, DEFAULT, True),
    (PLAIN, 11, 0, DEFAULT, True),
    (PLAIN, 12, 0, DEFAULT, False),  # 12 attempts made: the budget is spent
    (THROTTLE, 11, 0, DEFAULT, True),
    (THROTTLE, 12, 0, DEFAULT, False),
    (TIMEOUT, 1, 1, DEFAULT, True),
    (TIMEOUT, 2, 2, DEFAULT, True),
    (TIMEOUT, 3, 3, DEFAULT, False),  # three timeouts: a fourth could be billed again
    (PLAIN, 5, 3, DEFAULT, False),  # the timeout budget is spent whatever the latest error
    (PLAIN, 5, 2, DEFAULT, True),
    (FAIL, 1, 0, DEFAULT, False),
    (STOP, 1, 0, DEFAULT, False),
    (PLAIN, 1, 0, RetryPolicy(max_attempts=1), False),
    (PLAIN, 2, 0, RetryPolicy(max_attempts=3), True),
    (TIMEOUT, 1, 1, RetryPolicy(max_timeouts=1), False),
])
def test_should_retry(verdict: Verdict, attempts: int, timeouts: int, policy: RetryPolicy,
                      expected: bool) -> None:
    assert should_retry(verdict, attempts=attempts, timeouts=timeouts, policy=policy) is expected


@pytest.mark.parametrize("attempts, timeouts", [(0, 0), (1, -1), (1, 2)])
def test_should_retry_rejects_impossible_counts(attempts: int, timeouts: int) -> None:
    with pytest.raises(ValueError):
        should_retry(PLAIN, attempts=attempts, timeouts=timeouts, policy=DEFAULT)


def test_a_thirty_percent_failure_rate_loses_no_rows() -> None:
    # Every attempt failing independently with p = 0.3: a row is lost only if all attempts fail.
    assert 0.3 ** DEFAULT.max_attempts < 1e-6
    # ... so a million rows lose less than one in expectation.
    assert 1_000_000 * 0.3 ** DEFAULT.max_attempts < 1


# -- backoff_s --

def schedule(verdict: Verdict, rand: float, policy: RetryPolicy = DEFAULT, n: int = 10) -> list[float]:
    return [backoff_s(verdict, attempts=a, policy=policy, retry_after=None, rand=lambda: rand)
            for a in range(1, n + 1)]


@pytest.mark.parametrize("verdict, rand, expected", [
    (PLAIN, 1.0, [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]),
    (PLAIN, 0.5, [0.25, 0.5, 1, 2, 4, 8, 15, 15, 15, 15]),
    (PLAIN, 0.0, [0.0] * 10),
    (THROTTLE, 1.0, [1, 2, 4, 8, 16, 30, 30, 30, 30, 30]),
    (THROTTLE, 0.5, [0.5, 1, 2, 4, 8, 15, 15, 15, 15, 15]),
    (TIMEOUT, 1.0, [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]),
])
def test_schedule(verdict: Verdict, rand: float, expected: list[float]) -> None:
    assert schedule(verdict, rand) == pytest.approx(expected)


def test_schedule_with_other_constants() -> None:
    policy = RetryPolicy(base_s=1.0, throttle_base_s=5.0, cap_s=10.0)
    assert schedule(PLAIN, 1.0, policy, 5) == [1, 2, 4, 8, 10]
    assert schedule(THROTTLE, 1.0, policy, 3) == [5, 10, 10]


def test_huge_attempt_counts_do_not_overflow() -> None:
    assert backoff_s(PLAIN, attempts=10_000, policy=DEFAULT, retry_after=None, rand=lambda: 1.0) == 30.0


@pytest.mark.parametrize("rand", [-0.5, 1.5])
def test_a_rand_out_of_range_is_clamped(rand: float) -> None:
    wait = backoff_s(PLAIN, attempts=3, policy=DEFAULT, retry_after=None, rand=lambda: rand)
    assert 0.0 <= wait <= 2.0


@pytest.mark.parametrize("retry_after, expected", [
    (0.0, 0.0),
    (1.5, 1.5),  # below the computed backoff: the server still wins
    (90.0, 90.0),  # above cap_s: honoured
    (600.0, 600.0),
    (601.0, 600.0),  # capped at retry_after_cap_s
    (math.inf, 600.0),
    (-1.0, 2.0),  # negative: ignored, the schedule applies (attempt 3, rand 1.0)
    (math.nan, 2.0),
])
def test_retry_after_wins(retry_after: float, expected: float) -> None:
    calls: list[int] = []

    def rand() -> float:
        calls.append(1)
        return 1.0

    assert backoff_s(PLAIN, attempts=3, policy=DEFAULT, retry_after=retry_after, rand=rand) == expected
    assert backoff_s(THROTTLE, attempts=3, policy=DEFAULT, retry_after=retry_after, rand=rand) >= 0


def test_retry_after_is_not_jittered() -> None:
    assert backoff_s(THROTTLE, attempts=1, policy=DEFAULT, retry_after=30.0, rand=lambda: 0.0) == 30.0


def test_backoff_rejects_attempts_below_one() -> None:
    with pytest.raises(ValueError):
        backoff_s(PLAIN, attempts=0, policy=DEFAULT, retry_after=None, rand=lambda: 1.0)


def test_worst_case_total_wait_is_bounded() -> None:
    # A request throttled on all 12 attempts waits at most ~3.5 minutes in total before failing.
    total = sum(schedule(THROTTLE, 1.0, n=DEFAULT.max_attempts - 1))
    assert 150 < total < 240


# -- parse_retry_after --

@pytest.mark.parametrize("headers, expected", [
    ({}, None),
    ({"retry-after": "20"}, 20.0),
    ({"Retry-After": "20"}, 20.0),  # header names are case-insensitive
    ({"RETRY-AFTER": " 20 "}, 20.0),
    ({"retry-after": "0"}, 0.0),
    ({"retry-after": "1.5"}, 1.5),
    ({"retry-after": ".5"}, 0.5),
    ({"retry-after": "+3"}, 3.0),
    ({"retry-after": "-10"}, None),  # negative
    ({"retry-after": "-0"}, 0.0),
    ({"retry-after": ""}, None),
    ({"retry-after": "   "}, None),
    ({"retry-after": "soon"}, None),
    ({"retry-after": "nan"}, None),
    ({"retry-after": "inf"}, None),
    ({"retry-after": "1e3"}, None),
    ({"retry-after": "0x10"}, None),
    ({"retry-after": "1_000"}, None),
    ({"retry-after": "\u00b2"}, None),  # a digit to str.isdigit(), not to HTTP
    ({"retry-after": "\u0661\u0662\u0660"}, None),  # "120" in Arabic-Indic digits
    ({"retry-after": "9" * 400}, None),  # overflows a float: nonsense
    ({"retry-after": "99999999999999999999"}, 1e20),  # huge but finite: backoff_s caps it
    ({"retry-after-ms": "1500"}, 1.5),
    ({"Retry-After-Ms": "10"}, 0.01),
    ({"retry-after-ms": "2.5"}, 0.0025),
    ({"retry-after-ms": "100", "retry-after": "20"}, 0.1),  # milliseconds win
    ({"retry-after-ms": "garbage", "retry-after": "20"}, 20.0),  # ... unless unreadable
    ({"retry-after-ms": "-5", "retry-after": "7"}, 7.0),
    ({"retry-after-ms": "-5"}, None),
    ({"retry-after": "Fri, 29 Sep 2023 16:26:57 GMT"}, 20.0),  # IMF-fixdate
    ({"retry-after": "Fri, 29 Sep 2023 16:26:37 GMT"}, 0.0),  # now
    ({"retry-after": "Fri, 29 Sep 2023 16:26:27 GMT"}, None),  # in the past
    ({"retry-after": "Fri, 29 Sep 2023 16:27:37 GMT"}, 60.0),
    ({"retry-after": "Fri, 29 Sep 2023 17:26:37 +0100"}, 0.0),  # an offset is honoured
    ({"retry-after": "Friday, 29-Sep-23 16:27:37 GMT"}, 60.0),  # RFC 850, obsolete but valid
    ({"retry-after": "Fri Sep 29 16:27:37 2023"}, 60.0),  # asctime
    ({"retry-after": "Fri, 32 Sep 2023 16:26:57 GMT"}, None),  # no such day
    ({"retry-after": "2023-09-29T16:27:37Z"}, None),  # ISO 8601 is not an HTTP date
    ({"x-ratelimit-reset": "20"}, None),  # other headers are not read
])
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    got = parse_retry_after(headers, now=NOW)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_parse_retry_after_defaults_to_the_wall_clock() -> None:
    # A date far in the future is positive against the real clock; no sleeping involved.
    assert parse_retry_after({"retry-after": "Fri, 01 Jan 2100 00:00:00 GMT"}) > 0
