"""complete(mode="file") end to end against the simulator's Batch File API, over real sockets: line
faults, expiry, splitting, dedupe, edits across modes, retry_failed, budgets, the free test model,
run-fatal answers, and the same columns as Batch Chat."""

from __future__ import annotations

import os

import pandas as pd
import pytest

import batchframe
from batchframe import RunFatalError
from batchframe.simulator import ErrorRule, Simulator

from conftest import frame


def echo(body: dict) -> str:
    return "echo: " + body["messages"][-1]["content"]


def run(df, sim, ckpt, **kw):
    kw.setdefault("model", "qwen-plus")
    kw.setdefault("progress", False)
    kw.setdefault("mode", "file")
    kw.setdefault("poll_s", 0.01)
    if "template" not in kw and "messages_col" not in kw:
        kw.setdefault("prompt_col", "text")
    return df.batchchat.complete(base_url=sim.base_url, checkpoint=str(ckpt), **kw)


def billed_once(stats: dict) -> bool:
    return stats["duplicate_successes"] == 0 and set(stats["billed_per_prompt"].values()) <= {1}


@pytest.mark.slow
def test_3000_rows_with_failing_lines_and_a_moderated_row(tmp_path):
    df = frame(3000)
    df.loc[1234, "text"] = "something bad [[moderate]]"
    df.loc[2999, "text"] = df.loc[5, "text"]  # a repeated prompt: one line, billed once
    with Simulator(seed=11, error_500_rate=0.05, responder=echo) as sim:
        out = run(df, sim, tmp_path / "ck", file_max_lines=1000, prices={"input": 1.0, "output": 2.0})
        stats = sim.stats()
    good = out.drop(index=[1234])
    assert (good["status"] == "ok").all(), good["error"].dropna().head()
    assert (good["response"] == "echo: " + good["text"]).all()
    assert out.loc[1234, "status"] == "failed" and out.loc[1234, "error_code"] == "data_inspection_failed"
    assert stats["attempts_per_prompt"]["something bad [[moderate]]"] == 1  # permanent: never resubmitted
    assert billed_once(stats) and stats["lines_billed"] == 2998
    assert stats["lines_by_code"]["InternalError"] > 50 and out["attempts"].max() > 1  # the faults happened
    assert stats["batches_created"] > 3 and stats["files_stored"] == 0  # retries in new batches; files deleted
    assert out.loc[2999, "cost"] == 0 and out.loc[5, "cost"] > 0  # the copy is not billed
    s = out.attrs["batchframe"]
    assert abs(s["total_cost"] - float(out["cost"].sum())) < 1e-9 and s["ok"] == 2999 and s["failed"] == 1
    stored = batchframe.load_checkpoint(tmp_path / "ck")
    assert len(stored) == 3000 and (stored["status"] == "ok").sum() == 2999
    assert len(pd.read_parquet(tmp_path / "ck")) >= 3000  # the job's files are invisible to a raw read


def test_the_same_columns_and_dtypes_as_batch_chat(tmp_path):
    df = frame(30)
    df.loc[3, "text"] = None
    with Simulator(seed=2) as sim:
        chat = run(df, sim, tmp_path / "a", mode="chat", prices={"input": 1.0, "output": 2.0})
        file = run(df, sim, tmp_path / "b", prices={"input": 1.0, "output": 2.0})
    assert list(file.columns) == list(chat.columns)
    assert file.dtypes.to_dict() == chat.dtypes.to_dict()
    for col in ("response", "status", "error_code", "prompt_tokens", "completion_tokens", "cost"):
        pd.testing.assert_series_equal(file[col], chat[col])


@pytest.mark.parametrize("unfinished", ["error", "missing"])
def test_a_batch_that_expires_half_done(tmp_path, unfinished):
    df = frame(120)
    with Simulator(seed=4, batch_expire_after_lines=60, batch_unfinished=unfinished, responder=echo) as sim:
        out = run(df, sim, tmp_path / "ck")
        stats = sim.stats()
    assert (out["status"] == "ok").all() and (out["response"] == "echo: " + out["text"]).all()
    assert billed_once(stats) and stats["lines_billed"] == 120
    assert stats["batches"] == {"expired": 1, "completed": 1}
    assert sorted(out["attempts"].value_counts().to_dict().items()) == [(1, 60), (2, 60)]


def test_splitting_at_the_line_and_byte_limits(tmp_path):
    df = frame(50)
    with Simulator(seed=1) as sim:
        out = run(df, sim, tmp_path / "ck", file_max_lines=7, keep_remote_files=True)
        import openai

        client = openai.OpenAI(base_url=sim.base_url, api_key="x", max_retries=0)
        inputs = [f for f in client.files.list() if f.purpose == "batch"]
        sizes = [len(client.files.content(f.id).text.splitlines()) for f in inputs]
        assert sorted(sizes) == [1] + [7] * 7 and sim.stats()["batches_created"] == 8
        byte_cap = 2000
        out2 = run(frame(50, k=range(50)), sim, tmp_path / "ck2", file_max_bytes=byte_cap, template="{text} ({k})",
                   keep_remote_files=True)
        later = [f for f in client.files.list() if f.purpose == "batch" and f.id not in {g.id for g in inputs}]
        assert len(later) >= 4 and all(f.bytes <= byte_cap for f in later)
    assert (out["status"] == "ok").all() and (out2["status"] == "ok").all()


def test_remote_files_are_deleted_once_merged(tmp_path):
    with Simulator(seed=1) as sim:
        run(frame(10), sim, tmp_path / "ck")
        assert sim.stats()["files_stored"] == 0 and sim.stats()["files_deleted"] == 2
        assert os.listdir(tmp_path / "ck" / "_batchfile") == ["job.jsonl"]  # only the log is left


def test_edits_across_modes_send_only_what_changed(tmp_path):
    df = frame(40)
    with Simulator(seed=3) as sim:
        run(df, sim, tmp_path / "ck", mode="chat")
        assert sim.stats()["requests"] == 40
        edited = df.copy()
        edited.loc[7, "text"] = "changed once"
        sim.reset_stats()
        out = run(edited, sim, tmp_path / "ck")  # file mode: only the edited row is a line
        assert sim.stats()["lines"] == 1 and sim.stats()["requests"] == 0 and (out["status"] == "ok").all()
        edited.loc[9, "text"] = "changed twice"
        sim.reset_stats()
        out = run(edited, sim, tmp_path / "ck", mode="chat")  # and back: the file answer is reused
        assert sim.stats()["requests"] == 1 and sim.stats()["lines"] == 0 and (out["status"] == "ok").all()
        sim.reset_stats()
        run(edited, sim, tmp_path / "ck")
        assert sim.stats()["lines"] == 0 and sim.stats()["batches_created"] == 0  # nothing to submit


def test_retry_failed_resubmits_only_stored_failures(tmp_path):
    df = frame(10)
    df.loc[4, "text"] = "bad [[moderate]]"
    with Simulator(seed=3) as sim:
        out = run(df, sim, tmp_path / "ck")
        assert out.loc[4, "status"] == "failed"
        sim.reset_stats()
        run(df, sim, tmp_path / "ck")
        assert sim.stats()["lines"] == 0  # a permanent failure is kept
        out = run(df, sim, tmp_path / "ck", retry_failed=("data_inspection_failed",))
        assert sim.stats()["lines"] == 1 and out.loc[4, "status"] == "failed"


def test_max_cost_caps_the_worst_case_of_the_lines_submitted(tmp_path):
    df = frame(200)
    prices = {"input": 1000.0, "output": 1000.0}  # per million tokens
    with Simulator(seed=3) as sim:
        out = run(df, sim, tmp_path / "ck", max_cost=1.0, max_tokens=50, prices=prices)
        stats = sim.stats()
    done = out["status"] == "ok"
    assert 0 < done.sum() < 200 and (out.loc[~done, "status"] == "pending").all()
    assert stats["lines"] == done.sum() and out.attrs["batchframe"]["stop_reason"] == "budget"
    assert float(out["cost"].sum()) <= 1.0


def test_file_test_runs_the_free_model(tmp_path):
    df = frame(120)
    with Simulator(seed=3) as sim:
        out = run(df, sim, tmp_path / "ck", file_test=True)
        stats = sim.stats()
        assert stats["billed"] == 0 and stats["lines"] == 100
        assert (out["response"].dropna() == "This is a test result.").all()
        assert (out["status"] == "ok").sum() == 100 and (out["status"] == "pending").sum() == 20
        assert (out["cost"].dropna() == 0).all()
        sim.reset_stats()
        real = run(df, sim, tmp_path / "ck")  # the test answers are never reused for the real model
        assert sim.stats()["lines"] == 120 and not (real["response"] == "This is a test result.").any()


def test_failed_lines_in_the_output_file_and_lost_lines_are_retried(tmp_path):
    with Simulator(seed=8, batch_failed_in_output_rate=1.0, error_503_rate=0.3, drop_rate=0.1,
                   responder=echo) as sim:
        out = run(frame(100), sim, tmp_path / "ck")
        stats = sim.stats()
    assert (out["status"] == "ok").all() and (out["response"] == "echo: " + out["text"]).all()
    assert stats["lines_by_status"][503] > 5 and stats["lines_by_status"][0] > 2 and billed_once(stats)


@pytest.mark.parametrize("style", ["response", "error"])
def test_error_line_styles(tmp_path, style):
    df = frame(20)
    df.loc[2, "text"] = "x [[moderate]]"
    with Simulator(seed=8, batch_error_line_style=style, error_500_rate=0.2) as sim:
        out = run(df, sim, tmp_path / "ck")
    assert out.loc[2, "error_code"] == "data_inspection_failed"
    assert (out.drop(index=2)["status"] == "ok").all()


def test_a_run_fatal_line_stops_after_saving(tmp_path):
    rule = ErrorRule("[[arrears]]", 400, "Arrearage", "Access denied, please make sure your account is in good "
                     "standing.")
    df = frame(30)
    df.loc[10:, "text"] = [f"owing {i} [[arrears]]" for i in range(20)]
    with Simulator(seed=3, error_rules=(rule,)) as sim:
        with pytest.raises(RunFatalError) as info:
            run(df, sim, tmp_path / "ck")
    err = info.value
    assert err.code == "Arrearage" and "account" in str(err).lower()
    assert (err.partial.loc[:9, "status"] == "ok").all() and (err.partial.loc[10:, "status"] == "pending").all()
    assert (batchframe.load_checkpoint(tmp_path / "ck")["status"] == "ok").sum() == 10


def test_a_batch_failing_validation_is_fatal(tmp_path):
    with Simulator(seed=3, models=("qwen-flash",)) as sim:
        with pytest.raises(RunFatalError, match="model_not_found"):
            run(frame(5), sim, tmp_path / "ck")


def test_the_key_never_reaches_the_checkpoint_or_the_job_log(tmp_path):
    rule = ErrorRule("leak", 400, "InvalidParameter.DataInspection", "Bad.", echo_authorization=True)
    df = frame(5)
    df.loc[1, "text"] = "leak it"
    with Simulator(seed=3, error_rules=(rule,)) as sim:
        out = run(df, sim, tmp_path / "ck", api_key="sk-secret-123456789")
    assert "sk-secret" not in out.loc[1, "error"] and "[redacted]" in out.loc[1, "error"]
    for root, _, names in os.walk(tmp_path / "ck"):
        for name in names:
            assert b"sk-secret" not in open(os.path.join(root, name), "rb").read(), name


def test_the_polars_door_runs_in_file_mode(tmp_path):
    pl = pytest.importorskip("polars")
    import batchframe.polars  # noqa: F401

    df = pl.DataFrame({"id": list(range(20)), "text": [f"review {i}: good" for i in range(20)]})
    with Simulator(seed=3, responder=echo) as sim:
        out = df.batchchat.complete(prompt_col="text", model="qwen-plus", base_url=sim.base_url, mode="file",
                                    checkpoint=str(tmp_path / "ck"), poll_s=0.01, id_col="id", progress=False)
        assert sim.stats()["lines"] == 20
    assert out.height == 20 and out["status"].to_list() == ["ok"] * 20
    assert out["response"].to_list() == [f"echo: review {i}: good" for i in range(20)]


def test_simulate_true_serves_the_file_endpoints_too(tmp_path):
    out = frame(12).batchchat.complete(prompt_col="text", model="qwen-plus", simulate=True, mode="file",
                                       checkpoint=str(tmp_path / "ck"), poll_s=0.01, progress=False)
    assert (out["status"] == "ok").all() and out["simulated"].all()
