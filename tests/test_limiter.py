"""The token bucket and the AIMD concurrency limit, on a fake clock (no sleeping)."""

from __future__ import annotations

import math

import pytest

from batchframe.engine.limiter import AdaptiveConcurrency, TokenBucket


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- TokenBucket --

@pytest.mark.parametrize("rate, burst", [(100.0, None), (100.0, 5.0), (7.0, None), (1000.0, None), (3.0, 3.0)])
def test_rate_is_respected_over_time(rate: float, burst: float | None) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, burst=burst, clock=clock)
    step, seconds = 0.001, 3.0
    taken = 0
    for i in range(int(seconds / step) + 1):
        clock.now = 1000.0 + i * step
        while bucket.try_acquire() == 0.0:
            taken += 1
        # At every moment: never more than rate * elapsed + burst.
        assert taken <= rate * (i * step) + bucket.burst + 1e-6
    # ... and not much less either: the limiter does not waste capacity.
    assert taken >= rate * seconds + bucket.burst - 2


def test_default_burst_is_fifty_milliseconds() -> None:
    assert TokenBucket(1000.0, clock=FakeClock()).burst == 50.0
    assert TokenBucket(100.0, clock=FakeClock()).burst == 5.0
    assert TokenBucket(10.0, clock=FakeClock()).burst == 1.0  # never below one token


def test_try_acquire_wait_values() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, clock=clock)  # burst 1
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(0.1)
    assert bucket.try_acquire() == pytest.approx(0.1)  # asking again takes nothing
    clock.now += 0.04
    assert bucket.try_acquire() == pytest.approx(0.06)
    clock.now += 0.06  # waiting exactly the returned time is enough
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(0.1)


def test_a_long_idle_refills_only_up_to_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100.0, clock=clock)  # burst 5
    clock.now += 3600
    assert [bucket.try_acquire() for _ in range(6)][:5] == [0.0] * 5
    assert bucket.try_acquire() > 0


def test_a_clock_stepping_back_gives_nothing() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, clock=clock)
    assert bucket.try_acquire() == 0.0
    clock.now -= 100
    assert bucket.try_acquire() == pytest.approx(1.0)


def test_unlimited() -> None:
    bucket = TokenBucket(None, clock=FakeClock())
    assert bucket.rate is None
    assert all(bucket.try_acquire() == 0.0 for _ in range(100_000))


def test_set_rate_keeps_earned_tokens_and_applies_from_now() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, burst=5.0, clock=clock)
    while bucket.try_acquire() == 0.0:
        pass
    clock.now += 0.2  # 2 tokens earned at the old rate
    bucket.set_rate(1.0)
    assert bucket.rate == 1.0
    assert [bucket.try_acquire() for _ in range(2)] == [0.0, 0.0]
    assert bucket.try_acquire() == pytest.approx(1.0)  # the new, slower rate


def test_rate_setter_and_default_burst_follows_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000.0, clock=clock)  # burst 50, full
    bucket.rate = 100.0
    assert bucket.burst == 5.0
    assert sum(bucket.try_acquire() == 0.0 for _ in range(50)) == 5  # tokens clamped to the new burst


def test_set_rate_to_and_from_unlimited() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, clock=clock)
    assert bucket.try_acquire() == 0.0
    bucket.set_rate(None)
    assert all(bucket.try_acquire() == 0.0 for _ in range(1000))
    bucket.set_rate(2.0)  # like a new bucket: starts full
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(0.5)


@pytest.mark.parametrize("rate, burst", [
    (0.0, None), (-1.0, None), (math.inf, None), (math.nan, None), (True, None), ("10", None),
    (10.0, 0.5), (10.0, 0.0), (10.0, math.inf),
])
def test_bucket_bad_args_raise(rate: object, burst: object) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst=burst, clock=FakeClock())  # type: ignore[arg-type]


def test_set_rate_bad_value_raises() -> None:
    bucket = TokenBucket(1.0, clock=FakeClock())
    with pytest.raises(ValueError):
        bucket.set_rate(0.0)
    assert bucket.rate == 1.0


# -- AdaptiveConcurrency --

def test_initial_defaults() -> None:
    assert AdaptiveConcurrency(1000, clock=FakeClock()).limit == 32
    assert AdaptiveConcurrency(8, clock=FakeClock()).limit == 8
    assert AdaptiveConcurrency(100, initial=4, clock=FakeClock()).limit == 4


def test_slow_start_doubles_each_round_trip() -> None:
    aimd = AdaptiveConcurrency(1000, initial=4, clock=FakeClock())
    seen = []
    for _ in range(5):  # one round trip: every request in flight succeeds once
        for _ in range(aimd.limit):
            aimd.on_success()
        seen.append(aimd.limit)
    assert seen == [8, 16, 32, 64, 128]


def test_slow_start_stops_at_max() -> None:
    aimd = AdaptiveConcurrency(40, initial=32, clock=FakeClock())
    for _ in range(100):
        aimd.on_success()
    assert aimd.limit == 40


def test_throttle_cuts_and_ends_slow_start() -> None:
    aimd = AdaptiveConcurrency(1000, initial=64, clock=FakeClock())
    aimd.on_throttle()
    assert (aimd.limit, aimd.throttled) == (32, 1)
    for _ in range(32):  # a round trip after the cut: +1 (additive), no longer doubling
        aimd.on_success()
    assert aimd.limit == 33


def test_cooldown_merges_a_burst_of_throttles() -> None:
    clock = FakeClock()
    aimd = AdaptiveConcurrency(1000, initial=64, cooldown_s=2.0, clock=clock)
    for i in range(50):  # 50 429s answering one window, over 1.9 s
        clock.now += 0.038
        aimd.on_throttle()
    assert (aimd.limit, aimd.throttled) == (32, 1)
    clock.now += 2.0
    aimd.on_throttle()
    assert (aimd.limit, aimd.throttled) == (16, 2)


def test_additive_recovery_after_a_cut() -> None:
    clock = FakeClock()
    aimd = AdaptiveConcurrency(1000, initial=20, clock=clock)
    aimd.on_throttle()
    assert aimd.limit == 10
    for _ in range(9):
        aimd.on_success()
    assert aimd.limit == 10
    aimd.on_success()  # the 10th success: +1
    assert aimd.limit == 11
    for _ in range(11):
        aimd.on_success()
    assert aimd.limit == 12
    # About +1 per round trip, not doubling.
    for _ in range(5):
        for _ in range(aimd.limit):
            aimd.on_success()
    assert aimd.limit == 17


def test_bounds_are_respected() -> None:
    clock = FakeClock()
    aimd = AdaptiveConcurrency(10, initial=10, min_limit=3, decrease=0.5, cooldown_s=0.0, clock=clock)
    for _ in range(20):
        aimd.on_throttle()
        clock.now += 1
        assert 3 <= aimd.limit <= 10
    assert aimd.limit == 3
    for _ in range(1000):
        aimd.on_success()
        assert 3 <= aimd.limit <= 10
    assert aimd.limit == 10


def test_limit_one_never_reaches_zero() -> None:
    aimd = AdaptiveConcurrency(1, clock=FakeClock())
    aimd.on_throttle()
    aimd.on_success()
    assert aimd.limit == 1


def test_gentler_decrease() -> None:
    aimd = AdaptiveConcurrency(100, initial=50, decrease=0.9, clock=FakeClock())
    aimd.on_throttle()
    assert aimd.limit == 45


@pytest.mark.parametrize("args, kwargs", [
    ((0,), {}), ((-5,), {}), ((2.5,), {}), ((True,), {}),
    ((10,), {"min_limit": 0}), ((10,), {"min_limit": 11}),
    ((10,), {"initial": 0}), ((10,), {"initial": 11}), ((10,), {"initial": 2, "min_limit": 3}),
    ((10,), {"decrease": 0.0}), ((10,), {"decrease": 1.0}), ((10,), {"decrease": -0.5}),
    ((10,), {"cooldown_s": -1.0}), ((10,), {"cooldown_s": math.nan}),
])
def test_aimd_bad_args_raise(args: tuple, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        AdaptiveConcurrency(*args, clock=FakeClock(), **kwargs)


def test_slow_start_also_doubles_with_time_for_long_waits():
    clock = FakeClock()
    aimd = AdaptiveConcurrency(10_000, initial=32, double_every_s=2.0, clock=clock)
    assert aimd.limit == 32
    clock.now += 2.0
    assert aimd.limit == 64  # no answer yet (a 30 s queue wait): the window still opens
    clock.now += 8.0
    assert aimd.limit == 1024
    clock.now += 100.0
    assert aimd.limit == 10_000


def test_after_a_cut_the_limit_recovers_with_time():
    clock = FakeClock()
    aimd = AdaptiveConcurrency(10_000, initial=10_000, recover_per_s=0.05, clock=clock)
    aimd.on_throttle()
    assert aimd.limit == 5_000
    clock.now += 4.0  # 2 s of cooldown, then + 5 % of the maximum per second without pushback
    assert aimd.limit == 6_000
    clock.now += 100.0
    assert aimd.limit == 10_000


@pytest.mark.parametrize("bad", [dict(double_every_s=0), dict(recover_per_s=-1), dict(recover_per_s=True)])
def test_time_parameters_validated(bad):
    with pytest.raises(ValueError):
        AdaptiveConcurrency(10, **bad)
