"""The AIMD concurrency limit, on a fake clock (no sleeping). The pacer is in test_pacing.py."""

from __future__ import annotations

import math

import pytest

from batchframe.engine.limiter import AdaptiveConcurrency


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


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


def test_a_throttle_may_ask_for_its_own_cut() -> None:
    clock = FakeClock()
    lim = AdaptiveConcurrency(1000, initial=1000, clock=clock)
    lim.on_throttle(decrease=0.9)  # a full pending queue: a little fewer
    assert lim.limit == 900
    clock.now += 10
    lim.on_throttle()  # the limiter's own cut
    assert lim.limit < 900 * 0.6
