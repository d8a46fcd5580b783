"""The engine on its own, with an in-process fake call (no sockets, no pandas)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from batchframe.engine.dispatcher import HOLD, Engine, EngineConfig, ThreadTransport
from batchframe.records import FAILED, OK, Reply, Request
from batchframe.engine.retry import RetryPolicy
from batchframe import ConfigError, RunFatalError

FAST = RetryPolicy(base_s=0.001, throttle_base_s=0.001, cap_s=0.002)


class FakeCall:
    """Records every attempt; answers from a script keyed by (body id, attempt number)."""

    def __init__(self, script=None, default=None):
        self.script = script or {}
        self.default = default or (lambda body, n: Reply(kind="ok", status=200, response=f"re:{body['id']}",
                                                         prompt_tokens=3, completion_tokens=2, total_tokens=5))
        self.attempts: Counter = Counter()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0

    def __call__(self, body):
        with self.lock:
            self.attempts[body["id"]] += 1
            n = self.attempts[body["id"]]
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            fn = self.script.get(body["id"])
            return fn(body, n) if fn else self.default(body, n)
        finally:
            with self.lock:
                self.in_flight -= 1


def reqs(n):
    return [Request(f"r{i}", {"id": i}) for i in range(n)]


def http(status, code, message="x"):
    return Reply(kind="http", status=status, code=code, message=message)


def run(call, n, **cfg):
    cfg.setdefault("retry", FAST)
    engine = Engine(ThreadTransport(call), EngineConfig(**cfg))
    return engine, list(engine.run(reqs(n)))


def test_every_request_answered_once():
    call = FakeCall()
    _, results = run(call, 500, max_workers=16)
    assert sorted(r.rid for r in results) == sorted(f"r{i}" for i in range(500))
    assert all(r.status == OK and r.attempts == 1 for r in results)
    assert set(call.attempts.values()) == {1}


def test_in_flight_never_exceeds_workers_or_pending():
    call = FakeCall()
    run(call, 300, max_workers=50, max_pending=7)
    assert call.peak <= 7


def test_transient_errors_are_retried_until_success():
    flaky = lambda body, n: http(500, "InternalError") if n < 3 else Reply(kind="ok", status=200, response="fine")
    call = FakeCall({5: flaky, 6: lambda b, n: Reply(kind="timeout") if n == 1 else Reply(kind="ok", status=200)})
    _, results = run(call, 10, max_workers=4)
    by = {r.rid: r for r in results}
    assert by["r5"].status == OK and by["r5"].attempts == 3
    assert by["r6"].status == OK and by["r6"].attempts == 2


def test_permanent_failure_recorded_and_never_retried():
    call = FakeCall({3: lambda b, n: http(400, "data_inspection_failed", "Input data may contain inappropriate content.")})
    _, results = run(call, 10, max_workers=4)
    r3 = next(r for r in results if r.rid == "r3")
    assert r3.status == FAILED and r3.error_code == "data_inspection_failed"
    assert call.attempts[3] == 1
    assert sum(r.status == OK for r in results) == 9


def test_retries_exhausted_gives_a_failed_row_and_the_run_goes_on():
    call = FakeCall({2: lambda b, n: http(503, "ModelServingError")})
    _, results = run(call, 5, max_workers=2, retry=RetryPolicy(max_attempts=4, base_s=0.001,
                                                               throttle_base_s=0.001, cap_s=0.001))
    r2 = next(r for r in results if r.rid == "r2")
    assert r2.status == FAILED and r2.attempts == 4 and r2.error.startswith("gave up after 4 attempts")
    assert call.attempts[2] == 4


def test_wrong_key_stops_the_run_within_the_first_window():
    call = FakeCall(default=lambda b, n: http(401, "invalid_api_key", "Incorrect API key provided."))
    engine = Engine(ThreadTransport(call), EngineConfig(max_workers=8, retry=FAST))
    got = []
    with pytest.raises(RunFatalError) as info:
        for r in engine.run(reqs(10_000)):
            got.append(r)
    assert info.value.status == 401 and info.value.code == "invalid_api_key"
    assert "DASHSCOPE_API_KEY" in str(info.value)
    assert sum(call.attempts.values()) <= 16  # 2 x max_workers
    assert got == []


def test_identical_unknown_400s_on_the_first_rows_stop_the_run():
    call = FakeCall(default=lambda b, n: http(400, "InvalidParameter", "some new rule"))
    engine = Engine(ThreadTransport(call), EngineConfig(max_workers=2, retry=FAST))
    with pytest.raises(RunFatalError):
        list(engine.run(reqs(1000)))
    assert sum(call.attempts.values()) <= 6


def test_successes_shield_later_unknown_400s():
    script = {i: (lambda b, n: http(400, "InvalidParameter", "bad row")) for i in range(20, 40)}
    call = FakeCall(script)
    _, results = run(call, 60, max_workers=1)
    assert sum(r.status == FAILED for r in results) == 20


def test_admit_false_stops_dispatch_and_waits_for_in_flight():
    call = FakeCall()
    engine = Engine(ThreadTransport(call), EngineConfig(max_workers=4, retry=FAST))
    sent = []

    def admit(request):
        assert isinstance(request, Request)
        if len(sent) >= 10:
            return False
        sent.append(1)
        return True

    results = list(engine.run(reqs(100), admit=admit))
    assert len(results) == 10 and engine.stats.stop_reason == "budget"


def test_hold_means_ask_again_after_a_completion_not_the_end():
    """A request iterator that has nothing to send right now yields HOLD; the engine keeps going and
    asks again once an answer is back (the run's read-ahead window)."""
    call = FakeCall()
    engine = Engine(ThreadTransport(call), EngineConfig(max_workers=8, retry=FAST))
    done = []

    def requests():
        yield from reqs(2)
        while len(done) < 2:
            yield HOLD
        yield Request("late", {"id": "late"})

    for res in engine.run(requests()):
        done.append(res.rid)
    assert sorted(done) == ["late", "r0", "r1"]


def test_a_deadline_cuts_a_long_retry_after_short():
    """A server asking to wait (Retry-After: ~31 years) never holds the run past its deadline: the
    row is left unanswered (pending) and the run ends with stop reason "deadline"."""
    import time

    def throttled(body, n):
        return Reply(kind="http", status=429, code="Throttling", message="slow down", retry_after=10**9)

    engine = Engine(ThreadTransport(FakeCall(default=throttled)),
                    EngineConfig(max_workers=2, drain_s=0.05, retry=RetryPolicy(retry_after_cap_s=10**9)),
                    sleep_granularity_s=0.01)
    results = list(engine.run(reqs(3), deadline=time.monotonic() + 0.3))
    assert results == [] and engine.stats.stop_reason == "deadline"


def test_an_engine_needs_a_transport():
    with pytest.raises(TypeError, match="transport"):
        Engine(lambda body: Reply(kind="ok"), EngineConfig())


def test_stop_from_another_thread_abandons_long_calls_after_drain():
    release = threading.Event()

    def slow(body, n):
        release.wait(30)
        return Reply(kind="ok", status=200)

    call = FakeCall(default=slow)
    engine = Engine(ThreadTransport(call), EngineConfig(max_workers=4, drain_s=0.05, retry=FAST), sleep_granularity_s=0.01)
    timer = threading.Timer(0.1, engine.stop, args=("interrupted",))
    timer.start()
    try:
        results = list(engine.run(reqs(100)))
    finally:
        release.set()
    assert results == [] and engine.stats.stop_reason == "interrupted"
    assert sum(call.attempts.values()) <= 4


def test_throttling_cuts_concurrency():
    call = FakeCall(default=lambda b, n: http(429, "Throttling.RateQuota") if n == 1 else Reply(kind="ok", status=200))
    engine, results = run(call, 200, max_workers=64)
    assert len(results) == 200 and all(r.status == OK for r in results)
    assert engine.stats.throttled == 200 and engine.stats.retries == 200


@pytest.mark.parametrize("bad", [dict(max_workers=0), dict(max_pending=0), dict(qps=0), dict(drain_s=-1)])
def test_bad_config_raises(bad):
    with pytest.raises(ConfigError):
        EngineConfig(**bad)


def test_a_raising_call_becomes_a_retried_error_not_a_crash():
    def boom(body, n):
        if n == 1:
            raise RuntimeError("surprise")
        return Reply(kind="ok", status=200)

    call = FakeCall(default=boom)
    _, results = run(call, 20, max_workers=4)
    assert all(r.status == OK and r.attempts == 2 for r in results)
