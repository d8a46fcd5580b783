"""max_repairs=N in Batch File mode: the follow-up turns go out as lines of follow-up batches (never
through Batch Chat), answer the original request with the chain's totals, survive a kill -9."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

import batchframe
from batchframe.batchfile.record import JobLog
from batchframe.cli import main
from batchframe.simulator import ErrorRule, Simulator

from conftest import wait_until

ROOT = Path(__file__).resolve().parents[1]
JSON = {"type": "json_object"}
PRICES = {"input": 1.0, "output": 1.0}


def responder(body):
    """A row's answer is broken once per "bad" in its prompt, then valid. A follow-up turn carries the
    latest answer only (each round asks from the stored answer, as a resumed Batch Chat run does):
    "not json k" is the k-th broken answer."""
    msgs = body["messages"]
    prompt = next(m["content"] for m in msgs if m["role"] == "user")
    last = [m["content"] for m in msgs if m["role"] == "assistant"]
    k = int(last[-1].rsplit(" ", 1)[1]) + 1 if last else 0
    return f"not json {k}" if k < prompt.count("bad") else json.dumps({"label": "fixed" if last else "ok"})


def kw(sim, ckpt, **more):
    return dict(model="qwen-plus", base_url=sim.base_url, mode="file", poll_s=0.01, response_format=JSON,
                checkpoint=str(ckpt), progress=False, **more)


def texts(*items):
    return pd.DataFrame({"text": list(items)})


def test_broken_answers_are_repaired_by_a_follow_up_batch(tmp_path):
    df = texts("good 1", "bad 2", "good 3", "bad 4", "bad 2")  # the last row repeats a request: one line
    with Simulator(responder=responder) as sim:
        out = batchframe.complete(df, "text", max_repairs=1, prices=PRICES, **kw(sim, tmp_path / "ck"))
        stats = sim.stats()
    assert (out["status"] == "ok").all() and out["repairs"].tolist() == [0, 1, 0, 1, 1]
    assert out["response"].tolist()[1] == '{"label": "fixed"}' and out["attempts"].tolist() == [1] * 5
    assert stats["requests"] == 0 and stats["lines"] == 4 + 2 and stats["batches_created"] == 2
    assert stats["duplicate_successes"] == 0  # every line billed once
    chunks = JobLog(str(tmp_path / "ck")).chunks.values()
    assert [c.repair for c in chunks] == [0, 1] and all(not c.live for c in chunks)
    s = out.attrs["batchframe"]
    assert s["repairs"] == 2 and s["repaired"] == 2 and s["sent"] == 6 and s["ok"] == 5
    billed = out.iloc[:4]  # the last row is a copy (cost 0)
    assert billed["prompt_tokens"].sum() == stats["prompt_tokens"] == s["prompt_tokens"]
    assert billed["completion_tokens"].sum() == stats["completion_tokens"] == s["completion_tokens"]
    assert out["cost"].iloc[4] == 0 and out["cost"].sum() == pytest.approx(s["cost"]) and s["cost"] > 0
    per_token = billed["cost"] / (billed["prompt_tokens"] + billed["completion_tokens"])
    assert per_token.round(12).nunique() == 1  # the cost of a repaired row is that of the chain's tokens
    assert billed["prompt_tokens"].iloc[1] > 2 * billed["prompt_tokens"].iloc[0]  # two turns summed
    again = batchframe.complete(df, "text", max_repairs=1, prices=PRICES, **kw(sim, tmp_path / "ck"))
    assert again["repairs"].tolist() == out["repairs"].tolist() and sim.stats()["lines"] == 6  # nothing sent


def test_two_rounds_and_a_row_still_broken_after_n_keeps_its_parse_error(tmp_path):
    df = texts("good", "bad bad", "bad bad bad")
    with Simulator(responder=responder) as sim:
        out = batchframe.complete(df, "text", max_repairs=2, parse=True, **kw(sim, tmp_path / "ck"))
        stats = sim.stats()
    assert out["repairs"].tolist() == [0, 2, 2] and (out["status"] == "ok").all()
    assert out["parse_error"].isna().tolist() == [True, True, False]
    assert out["response"].iloc[2] == "not json 2" and out["label"].iloc[1] == "fixed"
    assert stats["requests"] == 0 and stats["lines"] == 3 + 2 + 2 and stats["batches_created"] == 3
    assert [c.repair for c in JobLog(str(tmp_path / "ck")).chunks.values()] == [0, 1, 2]
    s = out.attrs["batchframe"]
    assert s["repairs"] == 4 and s["repaired"] == 1 and s["parse_errors"] == 1


def test_an_answer_cut_off_at_max_tokens_is_not_repaired(tmp_path):
    with Simulator(responder=lambda body: "not json at all, and long enough to be cut off") as sim:
        out = batchframe.complete(texts("bad"), "text", max_repairs=2, max_tokens=3, parse=True,
                                  **kw(sim, tmp_path / "ck"))
        stats = sim.stats()
    assert out["finish_reason"].iloc[0] == "length" and out["repairs"].iloc[0] == 0
    assert "cut off at max_tokens" in out["parse_error"].iloc[0]
    assert stats["lines"] == 1 and stats["batches_created"] == 1 and stats["requests"] == 0


def test_a_follow_up_that_fails_leaves_the_last_answer_with_one_more_repair(tmp_path):
    rule = ErrorRule(match="could not be used", status=400, code="DataInspectionFailed", message="inappropriate")
    with Simulator(responder=responder, error_rules=(rule,)) as sim:
        out = batchframe.complete(texts("good", "bad"), "text", max_repairs=1, parse=True, prices=PRICES,
                                  **kw(sim, tmp_path / "ck"))
        stats = sim.stats()
    assert out["status"].tolist() == ["ok", "ok"] and out["repairs"].tolist() == [0, 1]
    assert out["response"].iloc[1] == "not json 0" and out["parse_error"].notna().tolist() == [False, True]
    assert stats["lines"] == 3 and stats["requests"] == 0 and out["cost"].sum() == pytest.approx(
        out.attrs["batchframe"]["cost"])


def test_retried_lines_of_a_repair_batch_keep_what_they_repair(tmp_path):
    """Every batch expires after 4 lines: the originals' and the follow-ups' last 2 lines are resubmitted."""
    df = texts(*[f"bad {i}" for i in range(6)])
    with Simulator(responder=responder, batch_expire_after_lines=4) as sim:
        out = batchframe.complete(df, "text", max_repairs=1, parse=True, file_max_lines=6,
                                  **kw(sim, tmp_path / "ck"))
        stats = sim.stats()
    assert (out["status"] == "ok").all() and out["repairs"].tolist() == [1] * 6 and out["parse_error"].isna().all()
    assert (out["attempts"] >= 1).all() and (out["attempts"] == 2).sum() == 2  # the transport's, of the follow-up
    chunks = list(JobLog(str(tmp_path / "ck")).chunks.values())
    assert [(c.repair, c.attempt) for c in chunks] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert stats["lines"] == 4 + 2 + 4 + 2 and stats["duplicate_successes"] == 0 and stats["requests"] == 0


CHILD = """
import sys, pandas as pd, batchframe
url, ckpt = sys.argv[1], sys.argv[2]
df = pd.DataFrame({"text": ["good 1", "bad 2", "good 3", "bad 4"]})
batchframe.complete(df, "text", model="qwen-plus", base_url=url, mode="file", poll_s=0.01, checkpoint=ckpt,
                    response_format={"type": "json_object"}, max_repairs=1, progress=False, timeout=600)
"""


@pytest.mark.slow
def test_kill_9_after_the_repair_batch_is_created_then_the_same_call_again(tmp_path):
    reached, go = threading.Event(), threading.Event()

    def held(body):  # the repair batch's first line waits (the simulator with it) until the client is dead
        if any(m["role"] == "assistant" for m in body["messages"]):
            reached.set()
            go.wait(60)
        return responder(body)

    marker = tmp_path / "created.txt"
    with Simulator(responder=held, on_batch_created_marker=str(marker)) as sim:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, sim.base_url, str(tmp_path / "ck")], cwd=ROOT)
        try:
            wait_until(lambda: reached.is_set(), timeout=120)
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            go.set()
            proc.kill()
            proc.wait()
        assert len(marker.read_text().split()) == 2  # the originals' batch and the repair batch
        live = JobLog(str(tmp_path / "ck")).live()
        assert [c.repair for c in live] == [1] and live[0].batch_id is not None
        out = batchframe.complete(texts("good 1", "bad 2", "good 3", "bad 4"), "text", max_repairs=1,
                                  **kw(sim, tmp_path / "ck"))
        stats = sim.stats()
    assert (out["status"] == "ok").all() and out["repairs"].tolist() == [0, 1, 0, 1]
    assert out["response"].tolist()[3] == '{"label": "fixed"}'
    assert stats["batches_created"] == 2 and stats["lines"] == 6 and stats["requests"] == 0  # re-attached
    assert stats["duplicate_successes"] == 0 and stats["lines_billed"] == 6


def test_the_cli_writes_the_repaired_rows(tmp_path):
    texts("good 1", "bad 2").to_csv(tmp_path / "in.csv", index=False)
    with Simulator(responder=responder) as sim:
        assert main(["run", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv"), "--prompt-col", "text",
                     "--model", "qwen-plus", "--base-url", sim.base_url, "--no-progress", "--mode", "file",
                     "--poll", "0.01", "--param", 'response_format={"type": "json_object"}', "--parse",
                     "--max-repairs", "1"]) == 0
        stats = sim.stats()
    got = pd.read_csv(tmp_path / "out.csv")
    assert got["repairs"].tolist() == [0, 1] and got["parse_error"].isna().all()
    assert got["label"].tolist() == ["ok", "fixed"]
    assert stats["requests"] == 0 and stats["lines"] == 3 and stats["batches_created"] == 2
