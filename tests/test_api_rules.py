"""The Batch Chat API's rules, end to end against the simulator: limits held, fatal codes stop."""

from __future__ import annotations

import pandas as pd
import pytest

import batchframe
from batchframe import RunFatalError
from batchframe.simulator import ErrorRule, Simulator

from conftest import frame


def run(df, sim, **kw):
    kw.setdefault("model", "qwen-plus")
    kw.setdefault("progress", False)
    return batchframe.complete(df, "text", base_url=sim.base_url, **kw)


@pytest.mark.slow
def test_heavy_throttling_and_bursts_every_row_right_and_limits_held():
    df = frame(1500)
    with Simulator(seed=3, max_qps=None, max_pending=None) as clean:
        expected = run(df, clean, max_workers=64)["response"]
    # in its own process, so that its arrival clock does not share the client's GIL
    with Simulator.spawn(seed=3, latency="uniform", latency_s=0.02, throttle_rate=0.30, burst_limit=60,
                         max_qps=None, max_pending=None) as sim:
        out = run(df, sim, max_workers=200, max_pending=40, qps=400)
        stats = sim.stats()
    assert (out["status"] == "ok").all()
    pd.testing.assert_series_equal(out["response"], expected)
    assert stats["peak_pending"] <= 40  # structural: the server counts a call until it answers
    # the client sends at most 400 in any second; arrivals may bunch by network/scheduler jitter
    assert stats["peak_qps"] <= 400 * 1.05
    assert stats["by_code"].get("Throttling.RateQuota", 0) > 300  # the faults were real
    assert stats["duplicate_successes"] == 0
    summary = out.attrs["batchframe"]
    assert summary["throttled"] >= stats["by_code"].get("Throttling.RateQuota", 0)


@pytest.mark.slow
def test_dispatch_never_exceeds_qps_in_any_one_second_window():
    """The limit as the engine applies it, on a fake clock: no timing, no sockets."""
    import queue

    from batchframe.engine.dispatcher import Engine, EngineConfig, ThreadTransport
    from batchframe.records import Reply, Request

    now = [0.0]
    sent = []

    def call(body):
        sent.append(now[0])
        return Reply(kind="ok", status=200)

    engine = Engine(ThreadTransport(call), EngineConfig(max_workers=500, qps=300), clock=lambda: now[0],
                    sleep_granularity_s=0.001)
    class FakeClockQueue:  # waiting for a completion advances the fake clock instead
        def __init__(self):
            self.q = queue.SimpleQueue()
            self.put = self.q.put
            self.get_nowait = self.q.get_nowait

        def get(self, timeout=None):
            try:
                return self.q.get_nowait()
            except queue.Empty:
                now[0] += max(timeout or 0.0, 0.0005)
                return self.q.get(timeout=0.001)  # raises Empty: the engine loops on

    engine._done = FakeClockQueue()
    engine._transport.bind(engine._done.put)
    results = list(engine.run(Request(f"r{i}", {"i": i}) for i in range(1000)))
    assert len(results) == 1000
    sent.sort()
    j = 0
    for i, t in enumerate(sent):
        while sent[j] <= t - 1.0:
            j += 1
        assert i - j + 1 <= 300


FATAL = [
    (401, "invalid_api_key", "Incorrect API key provided."),
    (400, "Arrearage", "Access denied, please make sure your account is in good standing."),
    (403, "AccessDenied", "Access denied."),
    (403, "AccessDenied.Unpurchased", "Access to model denied. Please make sure you are eligible."),
    (403, "Model.AccessDenied", "Model access denied."),
    (403, "AllocationQuota.FreeTierOnly", "The free tier of the model has been exhausted."),
    (404, "model_not_found", "The model `qwen-nope` does not exist or you do not have access to it."),
    (429, "Throttling.AllocationQuota", "Free allocated quota exceeded."),
    (429, "CommodityNotPurchased", "Commodity has not purchased yet."),
    (429, "PrepaidBillOverdue", "The prepaid bill is overdue."),
    (400, "InvalidParameter", "The parameter `enable_thinking` must be set to false for non-streaming calls."),
]


@pytest.mark.parametrize("status,code,message", FATAL, ids=[f[1] + str(i) for i, f in enumerate(FATAL)])
def test_each_run_fatal_code_stops_within_a_few_requests(status, code, message):
    with Simulator(error_rules=(ErrorRule("", status, code, message),)) as sim:
        with pytest.raises(RunFatalError) as info:
            run(frame(3000), sim, max_workers=8)
        sent = sim.stats()["requests"]
    assert sent <= 16
    err = info.value
    assert err.code == code and err.status == status and err.hint
    assert (err.partial["status"] == "pending").sum() >= 3000 - sent


def test_rate_limit_with_same_code_as_free_quota_is_retried_not_fatal():
    rule = ErrorRule("[[tpm]]", 429, "Throttling.AllocationQuota", "Allocated quota exceeded, please increase your quota limit.")
    with Simulator(error_rules=(rule,)) as sim:
        df = pd.DataFrame({"text": ["fine one", "limited [[tpm]]", "fine two"]})
        out = run(df, sim, max_attempts=3)
    assert list(out["status"]) == ["ok", "failed", "ok"]
    assert out.loc[1, "attempts"] == 3 and out.loc[1, "error_code"] == "Throttling.AllocationQuota"


def test_timeouts_are_retried_a_bounded_number_of_times():
    with Simulator(hang_rate=1.0, hang_s=30) as sim:
        out = run(frame(2), sim, timeout=0.3, max_workers=2)
        stats = sim.stats()
    assert (out["status"] == "failed").all() and (out["error_code"] == "timeout").all()
    assert (out["attempts"] == 3).all()  # max_timeouts: each may have been served and billed
    assert stats["requests"] == 6


def test_retry_after_is_honoured(monkeypatch):
    import batchframe.engine.dispatcher as engine_mod

    seen = []
    real = engine_mod.backoff_s

    def spy(verdict, **kw):
        seen.append(kw["retry_after"])
        return real(verdict, **kw)

    monkeypatch.setattr(engine_mod, "backoff_s", spy)
    with Simulator(throttle_rate=0.5, retry_after_s=0.01) as sim:
        out = run(frame(20), sim, max_workers=4)
    assert (out["status"] == "ok").all()
    assert seen and all(r == pytest.approx(0.01) for r in seen)


def test_open_file_limit_refused_clearly(monkeypatch, sim):
    import resource

    soft, hard = 1024, 4096  # a hard limit like many machines', whatever this one's is
    monkeypatch.setattr(resource, "getrlimit", lambda which: (soft, hard))
    monkeypatch.setattr(resource, "setrlimit", lambda *a: pytest.fail("must refuse, not raise the limit"))
    with pytest.raises(batchframe.ConfigError, match="open files"):
        run(frame(2), sim, max_workers=hard + 10, max_pending=hard + 10)
    assert sim.stats()["requests"] == 0
