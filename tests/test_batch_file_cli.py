"""The command line in Batch File mode: --mode file, --detach, status showing the batches, cancel."""

from __future__ import annotations

import json

import pandas as pd

from batchframe.cli import main
from batchframe.simulator import Simulator


def table(tmp_path, n=40):
    path = tmp_path / "in.csv"
    pd.DataFrame({"text": [f"review {i}: fine" for i in range(n)]}).to_csv(path, index=False)
    return path


def args(sim, src, out, *more):
    return ["run", str(src), "-o", str(out), "--prompt-col", "text", "--model", "qwen-plus",
            "--base-url", sim.base_url, "--poll", "0.01", "--file-max-lines", "15", "--batch-rows", "7",
            "--no-progress", *more]


def test_run_in_file_mode_writes_the_output(tmp_path):
    src, out = table(tmp_path), tmp_path / "out.parquet"
    with Simulator(seed=2) as sim:
        assert main(args(sim, src, out, "--mode", "file")) == 0
        assert sim.stats()["lines"] == 40 and sim.stats()["requests"] == 0 and sim.stats()["batches_created"] == 3
    got = pd.read_parquet(out)
    assert len(got) == 40 and (got["status"] == "ok").all()


def test_detach_then_status_then_collect(tmp_path, capsys):
    src, out = table(tmp_path), tmp_path / "out.parquet"
    ckpt = f"{out}.checkpoint"
    with Simulator(seed=2) as sim:
        sim.hold_batches(after_lines=5)
        assert main(args(sim, src, out, "--detach")) == 0
        err = capsys.readouterr().err
        assert "submitted 40 lines" in err and "without --detach" in err and not out.exists()
        assert sim.stats()["batches_created"] == 3
        assert main(["status", ckpt]) == 0
        text = capsys.readouterr().out
        assert "batches: 3, 3 not merged yet" in text and "40 of them submitted in live batches" in text
        assert main(["status", ckpt, "--json"]) == 0
        s = json.loads(capsys.readouterr().out)
        assert s["submitted"] == 40 and len(s["batches"]) == 3 and s["pending"] == 40
        sim.release_batches()
        assert main(args(sim, src, out, "--mode", "file")) == 0  # re-attached: collects, submits nothing
        assert sim.stats()["batches_created"] == 3 and sim.stats()["duplicate_successes"] == 0
    got = pd.read_parquet(out)
    assert (got["status"] == "ok").all()
    assert main(["status", ckpt, "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["submitted"] == 0 and s["ok"] == 40 and all(b["merged"] for b in s["batches"])


def test_cancel_then_rerun(tmp_path, capsys):
    src, out = table(tmp_path), tmp_path / "out.parquet"
    ckpt = f"{out}.checkpoint"
    with Simulator(seed=2) as sim:
        sim.hold_batches(after_lines=5)
        assert main(args(sim, src, out, "--detach")) == 0
        sim_lines = lambda: sim.stats()["lines"]  # noqa: E731
        from conftest import wait_until

        wait_until(lambda: sim_lines() == 15)
        assert main(["cancel", ckpt, "--poll", "0.01"]) == 0
        assert "15 rows answered" in capsys.readouterr().err
        assert sim.stats()["batches"] == {"cancelled": 3}
        assert main(["status", ckpt, "--json"]) == 0
        s = json.loads(capsys.readouterr().out)
        assert s["ok"] == 15 and s["submitted"] == 0
        sim.release_batches()
        assert main(args(sim, src, out, "--mode", "file")) == 0  # the rest submitted again
        stats = sim.stats()
    assert (pd.read_parquet(out)["status"] == "ok").all()
    assert stats["lines_billed"] == 40 and stats["duplicate_successes"] == 0


def test_flag_errors(tmp_path, capsys):
    src, out = table(tmp_path, 3), tmp_path / "out.parquet"
    with Simulator() as sim:
        assert main(args(sim, src, out, "--detach", "--mode", "chat")) == 2
        assert "--detach" in capsys.readouterr().err
        assert main(args(sim, src, out, "--mode", "file", "--no-checkpoint")) == 2
        assert "--checkpoint" in capsys.readouterr().err
        assert main(args(sim, src, out, "--mode", "file", "--completion-window", "2h")) == 2
        assert "--completion-window" in capsys.readouterr().err
        assert main(["cancel", str(tmp_path)]) == 2
        assert "no Batch File job" in capsys.readouterr().err
