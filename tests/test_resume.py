"""Checkpoint and resume through complete(): crashes, kill -9, edits, interrupts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

import batchframe
from batchframe import CheckpointError, RunInterrupted
from batchframe.checkpoint.store import CheckpointStore
from batchframe.simulator import Simulator

from conftest import frame, wait_until


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing catches it on the way out."""


def run(df, sim, ckpt, **kw):
    kw.setdefault("model", "qwen-plus")
    kw.setdefault("progress", False)
    kw.setdefault("max_workers", 16)
    return batchframe.complete(df, "text", base_url=sim.base_url, checkpoint=ckpt, **kw)


def settled(sim) -> int:
    """The server's request count once calls still in the air have landed (stable for 0.3 s)."""
    deadline, last, stable = time.monotonic() + 10, -1, 0
    while stable < 3 and time.monotonic() < deadline:
        stats = sim.stats()
        stable = stable + 1 if stats["requests"] == last and not stats["pending"] else 0
        last = stats["requests"]
        time.sleep(0.1)
    return last


def crash_after(monkeypatch, n):
    real = CheckpointStore.write
    count = {"n": 0}

    def write(self, keys, result, cost=None):
        if count["n"] >= n:
            raise Crash()
        count["n"] += 1
        return real(self, keys, result, cost)

    monkeypatch.setattr(CheckpointStore, "write", write)
    return count


def test_crash_after_n_results_then_resume_exact_rows(sim, tmp_path, monkeypatch):
    df = frame(300)
    ckpt = tmp_path / "ck"
    crash_after(monkeypatch, 120)
    with pytest.raises(Crash):
        run(df, sim, ckpt)
    monkeypatch.undo()
    first = settled(sim)
    assert batchframe.load_checkpoint(ckpt).shape[0] == 120
    out = run(df, sim, ckpt)
    assert (out["status"] == "ok").all() and len(out) == 300 and out.index.equals(df.index)
    attempts = sim.stats()["attempts_per_prompt"]
    assert sum(attempts.values()) <= sim.stats()["requests"]  # a request cut mid-body has no prompt
    resent = sum(1 for v in attempts.values() if v > 1)
    assert resent <= first - 120  # only what was in flight at the crash was sent twice
    assert set(attempts) == set(df["text"])
    loaded = batchframe.load_checkpoint(ckpt)
    assert len(loaded) == 300 and loaded.index.is_unique
    # a third run sends nothing at all
    before = sim.stats()["requests"]
    again = run(df, sim, ckpt)
    assert sim.stats()["requests"] == before and again.attrs["batchframe"]["sent"] == 0
    pd.testing.assert_series_equal(again["response"], out["response"])


def test_edited_prompts_rerun_only_those_rows(sim, tmp_path):
    df = frame(50)
    ckpt = tmp_path / "ck"
    run(df, sim, ckpt)
    edited = df.copy()
    edited.loc[[3, 17], "text"] = ["a brand new text", "another new text"]
    before = sim.stats()["requests"]
    out = run(edited, sim, ckpt)
    assert sim.stats()["requests"] - before == 2
    assert (out["status"] == "ok").all()
    # a changed parameter re-runs every row
    before = sim.stats()["requests"]
    run(edited, sim, ckpt, temperature=0.3)
    assert sim.stats()["requests"] - before == 50


def test_permanent_failures_kept_unless_asked(sim, tmp_path):
    df = frame(10)
    df.loc[4, "text"] = "bad [[moderate]]"
    ckpt = tmp_path / "ck"
    run(df, sim, ckpt)
    before = sim.stats()["requests"]
    out = run(df, sim, ckpt)
    assert sim.stats()["requests"] == before and out.loc[4, "status"] == "failed"
    run(df, sim, ckpt, retry_failed=["data_inspection_failed"])
    assert sim.stats()["requests"] == before + 1


def test_transient_failures_always_retried_on_rerun(tmp_path):
    df = frame(10)
    ckpt = tmp_path / "ck"
    with Simulator(error_500_rate=1.0) as bad:
        out = run(df, bad, ckpt, max_attempts=2)
    assert (out["status"] == "failed").all()
    assert out["error"].str.startswith("gave up after 2 attempts").all()
    # the endpoint is part of the request hash: a healthy server on the same address
    with Simulator(port=bad.port) as good:
        out = run(df, good, ckpt)
        assert good.stats()["requests"] == 10
    assert (out["status"] == "ok").all()


def test_another_endpoint_reruns_everything(sim, tmp_path):
    df = frame(5)
    ckpt = tmp_path / "ck"
    run(df, sim, ckpt)
    with Simulator() as other:
        run(df, other, ckpt)
        assert other.stats()["requests"] == 5


def test_second_concurrent_run_is_refused(sim, tmp_path):
    ckpt = tmp_path / "ck"
    with CheckpointStore(ckpt).open():
        with pytest.raises(CheckpointError, match="lock|another"):
            run(frame(3), sim, ckpt)
    assert sim.stats()["requests"] == 0


def test_foreign_directory_refused(sim, tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    with pytest.raises(CheckpointError):
        run(frame(3), sim, tmp_path)
    assert (tmp_path / "data.csv").read_text() == "a,b\n1,2\n"


@pytest.mark.slow
def test_interrupt_returns_partial_frame_quickly_with_hour_long_calls_in_flight(tmp_path):
    df = frame(200)
    ckpt = tmp_path / "ck"
    with Simulator(hang_rate=0.5, hang_s=3600) as sim:
        timer_started = time.monotonic()
        pid = os.getpid()
        import threading

        threading.Timer(1.5, os.kill, args=(pid, signal.SIGINT)).start()
        with pytest.raises(RunInterrupted) as info:
            run(df, sim, ckpt, on_interrupt="raise", max_workers=64)
        elapsed = time.monotonic() - timer_started
    partial = info.value.partial
    assert elapsed < 30
    assert set(partial["status"]) <= {"ok", "pending"}
    assert (partial["status"] == "pending").sum() > 0 and (partial["status"] == "ok").sum() > 0
    stored = batchframe.load_checkpoint(ckpt)
    assert set(stored.index) == set(partial.index[partial["status"] == "ok"])
    assert "Rerun the same call" in str(info.value)


KILL_SCRIPT = textwrap.dedent("""
    import sys, pandas as pd, batchframe
    base_url, ckpt, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    df = pd.DataFrame({"text": [f"review number {i}: it works fine" for i in range(n)]})
    batchframe.complete(df, "text", model="qwen-plus", base_url=base_url, checkpoint=ckpt,
                        max_workers=32, progress=False)
""")


@pytest.mark.slow
def test_kill_9_mid_run_then_resume(tmp_path):
    n = 3000
    ckpt = tmp_path / "ck"
    with Simulator(latency="uniform", latency_s=0.02) as sim:
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, sim.base_url, str(ckpt), str(n)])
        try:
            wait_until(lambda: sim.stats()["successes"] >= n * 0.4, timeout=60)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
        answered = sim.stats()["successes"]
        assert answered < n, "the run finished before the kill: make it slower"
        raw = pd.read_parquet(ckpt)  # readable right after the kill
        assert set(raw.columns) >= {"key", "response", "status"}
        stored = batchframe.load_checkpoint(ckpt)
        # every answer except those in flight at the kill was saved
        assert len(stored) >= answered - 32
        before = sim.stats()
        df = frame(n)
        out = run(df, sim, ckpt, max_workers=32)
        after = sim.stats()
    assert (out["status"] == "ok").all() and len(out) == n
    # answers the resume was given beyond the rows never answered before (requests would also count
    # the retries of 429s from the simulator's default QPS cap, which a faster client meets)
    resent = after["successes"] - before["successes"] - (n - answered)
    assert resent <= 32  # only calls in flight at the kill were paid twice
    assert after["duplicate_successes"] <= 32
