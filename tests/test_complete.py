"""complete() end to end against the simulator, over real sockets, through the client a real run uses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import batchframe
from batchframe import ConfigError, RunFatalError
from batchframe.simulator import ErrorRule, Simulator

from conftest import frame

RESULT = ["response", "finish_reason", "prompt_tokens", "completion_tokens", "total_tokens", "error", "status"]


def run(df, sim, **kw):
    kw.setdefault("model", "qwen-plus")
    kw.setdefault("progress", False)
    kw.setdefault("max_workers", 32)
    if "template" not in kw and "messages_col" not in kw:
        kw.setdefault("prompt_col", "text")
    return df.batchchat.complete(base_url=sim.base_url, **kw)


def test_columns_dtypes_index_and_order(sim):
    df = frame(50).set_index(pd.Index(np.arange(100, 50, -1), name="rid"))
    before = df.copy()
    out = run(df, sim)
    pd.testing.assert_frame_equal(df, before)  # input untouched
    assert out.index.equals(df.index) and list(out.columns[:1]) == ["text"]
    assert (out["text"] == df["text"]).all()
    for col in RESULT:
        assert col in out.columns
    assert str(out["response"].dtype) == "string" and str(out["prompt_tokens"].dtype) == "Int64"
    assert (out["status"] == "ok").all() and out["error"].isna().all()
    assert (out["total_tokens"] == out["prompt_tokens"] + out["completion_tokens"]).all()
    assert sim.stats()["requests"] == 50


@pytest.mark.slow
def test_faults_1000_rows_all_come_back_right():
    df = frame(1000)
    with Simulator(seed=7) as clean:
        expected = run(df, clean)["response"]
    with Simulator(seed=7, throttle_rate=0.20, error_500_rate=0.05, drop_rate=0.02) as sim:
        out = run(df, sim, max_workers=64)
        stats = sim.stats()
    assert (out["status"] == "ok").all(), out["error"].dropna().head()
    pd.testing.assert_series_equal(out["response"], expected)
    assert stats["distinct_successes"] == 1000 and stats["duplicate_successes"] == 0
    assert stats["requests"] > 1000  # the faults really happened and were retried
    assert out["attempts"].max() > 1


def test_moderated_row_fails_once_and_run_goes_on(sim):
    df = frame(20)
    df.loc[7, "text"] = "something bad [[moderate]]"
    out = run(df, sim)
    assert out.loc[7, "status"] == "failed" and out.loc[7, "error_code"] == "data_inspection_failed"
    assert pd.isna(out.loc[7, "response"]) and "inappropriate" in out.loc[7, "error"]
    assert sim.stats()["attempts_per_prompt"]["something bad [[moderate]]"] == 1
    assert (out.drop(index=7)["status"] == "ok").all()


def test_wrong_key_stops_within_two_windows():
    with Simulator(api_key="right-key") as sim:
        with pytest.raises(RunFatalError) as info:
            run(frame(5000), sim, api_key="sk-wrong-key-1234567890abcdef", max_workers=16)
        sent = sim.stats()["requests"]
    assert sent <= 2 * 16
    err = info.value
    assert err.status == 401 and "API key" in str(err)
    assert "sk-wrong" not in str(err) and "sk-wrong" not in repr(err)
    assert err.partial is not None and (err.partial["status"] == "pending").sum() >= 5000 - sent


@pytest.mark.parametrize("rule,code", [
    (ErrorRule("", 404, "model_not_found", "The model `x` does not exist."), "model_not_found"),
    (ErrorRule("", 400, "Arrearage", "Access denied, please make sure your account is in good standing."), "Arrearage"),
    (ErrorRule("", 429, "Throttling.AllocationQuota", "Free allocated quota exceeded."), "Throttling.AllocationQuota"),
    (ErrorRule("", 403, "AccessDenied", "Access denied."), "AccessDenied"),
])
def test_run_fatal_codes_stop_quickly(rule, code):
    with Simulator(error_rules=(rule,)) as sim:
        with pytest.raises(RunFatalError) as info:
            run(frame(2000), sim, max_workers=8)
        assert sim.stats()["requests"] <= 16
    assert info.value.code == code


def test_empty_and_nan_prompts_get_row_errors_without_requests(sim):
    df = pd.DataFrame({"text": ["fine", None, "", "   ", np.nan, "also fine"]})
    out = run(df, sim)
    assert list(out["status"]) == ["ok", "failed", "failed", "failed", "failed", "ok"]
    assert (out.loc[1:4, "error_code"] == "empty_prompt").all()
    assert sim.stats()["requests"] == 2


def test_identical_requests_sent_once_and_copied(sim):
    df = pd.DataFrame({"text": ["same words"] * 30 + ["other words"] * 10})
    out = run(df, sim, prices={"input": 1.0, "output": 2.0})
    assert sim.stats()["requests"] == 2
    assert out["request_id"].nunique() == 2 and (out["status"] == "ok").all()
    assert out.attrs["batchframe"]["unique_requests"] == 2
    # billed once: the copies carry no cost of their own
    assert out["cost"].gt(0).sum() == 2


def test_dedupe_off_sends_every_row(sim):
    df = pd.DataFrame({"text": ["same words"] * 5})
    run(df, sim, dedupe=False)
    assert sim.stats()["requests"] == 5


def test_empty_frame_gives_result_columns(sim):
    out = run(pd.DataFrame({"text": pd.Series([], dtype="string")}), sim)
    assert len(out) == 0 and all(c in out.columns for c in RESULT)
    assert sim.stats()["requests"] == 0


def test_template_and_system(sim):
    df = pd.DataFrame({"product": ["kettle", "lamp"], "review": ["boils fast", None]})
    out = run(df, sim, template="Product {product}: {review}", system="One word.")
    assert list(out["status"]) == ["ok", "failed"]
    assert sim.stats()["attempts_per_prompt"] == {"Product kettle: boils fast": 1}


def test_messages_column(sim):
    df = pd.DataFrame({"m": [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                              {"role": "user", "content": "is this good?"}]]})
    out = run(df, sim, messages_col="m")
    assert out.loc[0, "status"] == "ok"


@pytest.mark.parametrize("kwargs,exc,words", [
    (dict(prompt_col="nope"), ConfigError, "not a column"),
    (dict(prompt_col=None, template="{missing} text"), ConfigError, "missing column"),
    (dict(temprature=0.1), TypeError, "temprature"),
    (dict(prompt_col="num"), ConfigError, "non-text"),
    (dict(prefix="", suffix="", prompt_col="text", model=""), ConfigError, "model"),
])
def test_bad_arguments_fail_before_sending(sim, kwargs, exc, words):
    df = frame(3, num=[1, 2, 3])
    with pytest.raises(exc, match=words):
        run(df, sim, **kwargs)
    assert sim.stats()["requests"] == 0


def test_duplicate_index_refused_with_the_fix(sim):
    df = frame(3).set_index(pd.Index([1, 1, 2]))
    with pytest.raises(ConfigError, match="reset_index"):
        run(df, sim)


def test_result_column_clash_and_prefix(sim):
    df = frame(2, response=["a", "b"])
    with pytest.raises(ConfigError, match="prefix"):
        run(df, sim)
    out = run(df, sim, prefix="llm_")
    assert "llm_response" in out.columns and list(out["response"]) == ["a", "b"]


def test_no_key_on_dashscope_is_a_clear_error_not_fake_answers():
    with pytest.raises(ConfigError, match="simulate=True"):
        batchframe.complete(frame(2), "text", model="qwen-plus", progress=False)


@pytest.mark.parametrize("timeout", [10, 3601])
def test_dashscope_timeout_range(timeout, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-test-not-real")
    with pytest.raises(ConfigError, match="60-3,600"):
        batchframe.complete(frame(2), "text", model="qwen-plus", timeout=timeout, progress=False)


def test_other_endpoints_allow_short_timeouts(sim):
    out = run(frame(3), sim, timeout=5)
    assert (out["status"] == "ok").all()


def test_simulate_true_runs_without_key():
    out = batchframe.complete(frame(5), "text", model="qwen-plus", simulate=True, progress=False)
    assert (out["status"] == "ok").all() and out["cost"].notna().all()


def test_thinking_default_off_for_hybrid_models_on_batch_chat(caplog):
    kw = dict(model="qwen3.5-plus", simulate=True, progress=False)
    out = batchframe.complete(frame(3), "text", **kw)
    assert out["reasoning_tokens"].isna().all() and out["reasoning_content"].isna().all()
    assert "enable_thinking=False" in caplog.text
    out = batchframe.complete(frame(3), "text", enable_thinking=True, **kw)
    assert (out["reasoning_tokens"] > 0).all() and out["reasoning_content"].notna().all()


def test_other_endpoints_get_only_the_parameters_given(sim):
    out = run(frame(3), sim, model="qwen3.5-plus")  # the server's default (thinking on) applies
    assert (out["reasoning_tokens"] > 0).all()


def test_the_key_never_reaches_a_log_a_repr_or_the_checkpoint(tmp_path, caplog, capsys):
    import logging

    secret = "sk-" + "abcdefghijklmnop" * 2  # built at run time: no key-shaped literal in the repo
    caplog.set_level(logging.DEBUG)
    with Simulator(api_key=secret, throttle_rate=0.3) as sim:
        df = frame(30)
        df.loc[3, "text"] = "[[moderate]] bad"
        out = batchframe.complete(df, "text", model="qwen-plus", base_url=sim.base_url, api_key=secret,
                                  checkpoint=tmp_path / "ck", progress=True, max_workers=8)
    assert (out["status"] == "ok").sum() == 29
    printed = capsys.readouterr()
    assert secret not in caplog.text + printed.out + printed.err
    assert secret not in repr(out.attrs) and secret not in out.to_csv()
    for f in (tmp_path / "ck").rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f
    from batchframe.engine.wire import AsyncCaller
    from batchframe.pipeline.options import resolve

    caller = AsyncCaller(base_url=sim.base_url, api_key=secret, timeout=5, max_connections=1)
    assert secret not in repr(caller)
    opts = resolve("text", model="qwen-plus", base_url=sim.base_url, api_key=secret, timeout=5)
    assert secret not in repr(opts) and secret not in str(opts)
