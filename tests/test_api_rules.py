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


def test_heavy_throttling_and_bursts_every_row_right_and_limits_held():
    df = frame(1500)
    with Simulator(seed=3, max_qps=None, max_pending=None) as clean:
        expected = run(df, clean, max_workers=64)["response"]
    with Simulator(seed=3, latency="uniform", latency_s=0.02, throttle_rate=0.30, burst_limit=60,
                   max_qps=None, max_pending=None) as sim:
        out = run(df, sim, max_workers=200, max_pending=40, qps=400)
        stats = sim.stats()
    assert (out["status"] == "ok").all()
    pd.testing.assert_series_equal(out["response"], expected)
    assert stats["peak_pending"] <= 40
    assert stats["peak_qps"] <= 400
    assert stats["by_code"].get("Throttling.RateQuota", 0) > 300  # the faults were real
    assert stats["duplicate_successes"] == 0
    summary = out.attrs["batchframe"]
    assert summary["throttled"] >= stats["by_code"].get("Throttling.RateQuota", 0)


def test_client_limits_keep_the_server_caps_from_ever_rejecting():
    df = frame(1200)
    with Simulator(latency="fixed", latency_s=0.01, max_qps=300, max_pending=25) as sim:
        out = run(df, sim, max_workers=100, max_pending=25, qps=300)
        stats = sim.stats()
    assert (out["status"] == "ok").all()
    assert stats["by_code"].get("limit_requests", 0) == 0, stats["by_code"]
    assert stats["requests"] == 1200


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
    import batchframe._engine as engine_mod

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

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard open-file limit here")
    with pytest.raises(batchframe.ConfigError, match="open files"):
        run(frame(2), sim, max_workers=hard + 10, max_pending=hard + 10)
    assert sim.stats()["requests"] == 0
