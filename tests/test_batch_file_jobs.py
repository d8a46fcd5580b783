"""Batch File jobs across calls and processes: submit() and wait() elsewhere, kill -9 right after a
batch is created, a create that never answered, cancel, deadline, file_fallback_s, mode="auto"."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import batchframe
from batchframe.batchfile.job import choose
from batchframe.batchfile.record import JobLog
from batchframe.pipeline.options import resolve
from batchframe.simulator import Simulator

from conftest import frame, wait_until

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import sys, pandas as pd, batchframe
url, ckpt, n, what, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
df = pd.DataFrame({"text": [f"review number {i}: it works fine" for i in range(n)]})
kw = dict(prompt_col="text", model="qwen-plus", base_url=url, checkpoint=ckpt, poll_s=0.01, file_max_lines=25,
          progress=False, timeout=600)
if what == "wait":
    job = batchframe.submit(df, **kw)
    job.wait().to_parquet(out)
else:
    df.batchchat.complete(mode="file", **kw).to_parquet(out)
"""


def child(sim, ckpt, n, what, out):
    return subprocess.Popen([sys.executable, "-c", CHILD, sim.base_url, str(ckpt), str(n), what, str(out)],
                            cwd=ROOT)


def kw(sim, ckpt, **more):
    return dict(prompt_col="text", model="qwen-plus", base_url=sim.base_url, checkpoint=str(ckpt), poll_s=0.01,
                file_max_lines=25, progress=False, **more)


def billed_once(stats: dict) -> bool:
    return stats["duplicate_successes"] == 0 and set(stats["billed_per_prompt"].values()) == {1}


@pytest.mark.slow
def test_submit_returns_while_held_and_wait_elsewhere_returns_the_frame(tmp_path):
    df = frame(60)
    with Simulator(seed=5) as sim:
        sim.hold_batches(after_lines=0)
        job = batchframe.submit(df, **kw(sim, tmp_path / "ck"))
        assert sim.stats()["batches_created"] == 3 and sim.stats()["lines"] == 0  # returned while held
        status = job.status()
        assert list(status.columns[:6]) == ["batch_id", "status", "total", "completed", "failed", "expires_at"]
        assert len(status) == 3 and set(status["status"]) <= {"validating", "in_progress"}
        assert str(status["expires_at"].dt.tz) == "UTC" and not status["merged"].any()
        assert df.batchchat.submit(**kw(sim, tmp_path / "ck")) is not None  # re-attached: nothing new
        assert sim.stats()["batches_created"] == 3
        proc = child(sim, tmp_path / "ck", 60, "wait", tmp_path / "out.parquet")
        try:
            sim.release_batches()
            assert proc.wait(timeout=120) == 0
        finally:
            proc.kill()
        out = pd.read_parquet(tmp_path / "out.parquet")
        stats = sim.stats()
    assert (out["status"] == "ok").all() and len(out) == 60
    assert stats["batches_created"] == 3 and billed_once(stats)
    assert job.status()["merged"].all() and set(job.status()["status"]) == {"completed"}


def test_submit_refuses_a_server_that_dies_with_the_call():
    with pytest.raises(batchframe.ConfigError, match="base_url="):
        batchframe.submit(frame(3), "text", model="qwen-plus", simulate=True, checkpoint="unused")
    with pytest.raises(batchframe.ConfigError, match="mode="):
        batchframe.submit(frame(3), "text", model="qwen-plus", mode="chat", checkpoint="unused")


@pytest.mark.slow
@pytest.mark.parametrize("stall", [0, 1])
def test_kill_9_right_after_a_batch_is_created_then_the_same_call_again(tmp_path, stall):
    """stall=1: the create never answers, so the killed client never had the id: found through the list."""
    marker = tmp_path / "created.txt"
    with Simulator(seed=5, on_batch_created_marker=str(marker), stall_batch_creates=stall,
                   batch_hold_lines=0) as sim:
        proc = child(sim, tmp_path / "ck", 60, "complete", tmp_path / "never.parquet")
        try:
            wait_until(lambda: marker.exists() and marker.read_text().endswith("\n"), timeout=60)
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            proc.kill()
            proc.wait()
        first = marker.read_text().split()
        assert len(first) >= 1
        recorded = {c.batch_id for c in JobLog(str(tmp_path / "ck")).chunks.values()}
        if stall:
            assert first[0] not in recorded  # the client died without the id
        sim.release_batches()
        out = frame(60).batchchat.complete(mode="file", **kw(sim, tmp_path / "ck"))
        stats = sim.stats()
        created = marker.read_text().split()
    assert (out["status"] == "ok").all()
    assert len(created) == len(set(created)) == 3 == stats["batches_created"]  # no chunk made twice
    assert first[0] in {c.batch_id for c in JobLog(str(tmp_path / "ck")).chunks.values()}
    assert billed_once(stats) and stats["lines_billed"] == 60


def test_cancel_collects_what_finished_and_leaves_the_rest_pending(tmp_path):
    with Simulator(seed=5) as sim:
        sim.hold_batches(after_lines=10)
        job = frame(50).batchchat.submit(**kw(sim, tmp_path / "ck"))
        wait_until(lambda: sim.stats()["lines"] == 20)  # two batches, 10 lines each, then held
        out = job.cancel()
        stats = sim.stats()
        assert (out["status"] == "ok").sum() == 20 and (out["status"] == "pending").sum() == 30
        assert out.attrs["batchframe"]["stop_reason"] == "cancelled"
        assert stats["batches"] == {"cancelled": 2} and stats["billed"] == 20
        assert batchframe.load_checkpoint(tmp_path / "ck")["status"].eq("ok").sum() == 20
        sim.release_batches()
        again = frame(50).batchchat.complete(mode="file", **kw(sim, tmp_path / "ck"))  # resumes the rest
        assert (again["status"] == "ok").all() and billed_once(sim.stats())


def test_a_deadline_cancels_collects_and_leaves_rows_pending(tmp_path):
    with Simulator(seed=5) as sim:
        sim.hold_batches(after_lines=5)
        out = frame(50).batchchat.complete(mode="file", deadline_s=2, **kw(sim, tmp_path / "ck"))
        stats = sim.stats()
    assert out.attrs["batchframe"]["stop_reason"] == "deadline"
    assert (out["status"] == "ok").sum() == stats["billed"] == 10 and (out["status"] == "pending").sum() == 40
    assert set(stats["batches"]) == {"cancelled"}


def test_fallback_finishes_the_queued_rows_through_batch_chat(tmp_path):
    with Simulator(seed=5) as sim:
        sim.hold_batches(after_lines=5)
        out = frame(50).batchchat.complete(mode="file", file_fallback_s=1, **kw(sim, tmp_path / "ck"))
        stats = sim.stats()
    assert (out["status"] == "ok").all()
    assert stats["lines_billed"] == 10 and stats["requests"] == 40 and billed_once(stats)
    assert set(stats["batches"]) == {"cancelled"}


def test_auto_picks_by_row_count_end_to_end(tmp_path, caplog):
    with Simulator(seed=5) as sim, caplog.at_level(logging.WARNING, logger="batchframe"):
        frame(30).batchchat.complete(mode="auto", auto_file_rows=30, **kw(sim, tmp_path / "a"))
        assert sim.stats()["lines"] == 30 and sim.stats()["requests"] == 0
        frame(29).batchchat.complete(mode="auto", auto_file_rows=30, **kw(sim, tmp_path / "b"))
        assert sim.stats()["requests"] == 29
    assert "chose Batch File" in caplog.text and "chose Batch Chat" in caplog.text


@pytest.mark.slow
def test_ctrl_c_stops_waiting_and_the_batches_go_on(tmp_path):
    with Simulator(seed=5) as sim:
        sim.hold_batches(after_lines=0)
        proc = child(sim, tmp_path / "ck", 30, "complete", tmp_path / "out.parquet")
        try:
            wait_until(lambda: sim.stats()["batches_created"] == 2, timeout=60)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) != 0  # a script raises RunInterrupted
        finally:
            proc.kill()
            proc.wait()
        assert sim.stats()["batches"] == {"in_progress": 2}  # not cancelled: re-attach collects them
        sim.release_batches()
        out = frame(30).batchchat.complete(mode="file", **kw(sim, tmp_path / "ck"))
        assert (out["status"] == "ok").all() and sim.stats()["batches_created"] == 2


def opts(**more):
    return resolve("text", model="qwen-plus", base_url="http://127.0.0.1:9/v1", **more)


class _Rows:
    def __init__(self, rows):
        self.rows = rows


@pytest.mark.parametrize(("kw", "rows", "file", "why"), [
    ({"checkpoint": "x"}, 10_000, True, "at least auto_file_rows=10,000"),
    ({"checkpoint": "x"}, 9_999, False, "under auto_file_rows=10,000"),
    ({"checkpoint": "x", "auto_file_rows": 50}, 60, True, "at least auto_file_rows=50"),
    ({"checkpoint": "x", "deadline_s": 3600}, 50_000, False, "deadline_s=3600 is under a day"),
    ({"checkpoint": "x", "deadline_s": 2 * 86400}, 50_000, True, "at least"),
    ({}, 50_000, False, "no checkpoint="),
])
def test_auto_says_what_it_chose_and_why(caplog, kw, rows, file, why):
    with caplog.at_level(logging.WARNING, logger="batchframe"):
        job = choose(opts(mode="auto", **kw), _Rows(rows))
    assert (job is not None) == file
    assert why in caplog.text and ("Batch File" if file else "Batch Chat") in caplog.text
