"""One run behind every front door: decisions that used to differ between complete() and the CLI,
each checked through both doors, and the run's promises (budget, deadline, leftovers)."""

from __future__ import annotations

import math
import os

import pandas as pd
import pyarrow.parquet as pq
import pytest

import batchframe
from batchframe import BudgetExceeded, ConfigError
from batchframe.cli import main
from batchframe.simulator import Simulator

from conftest import frame

PRICES = {"input": 1000.0, "output": 1000.0}  # per million tokens: a few prompts cost real money


def duplicates(n: int = 20) -> pd.DataFrame:
    """Every prompt three times over."""
    return pd.DataFrame({"text": [f"review {i % (n // 3 + 1)}: it works" for i in range(n)]})


def cli(inp, out, sim, *extra) -> int:
    return main(["run", str(inp), "-o", str(out), "--prompt-col", "text", "--model", "qwen-plus",
                 "--base-url", sim.base_url, "--no-progress", *map(str, extra)])


def test_cost_on_resume_equals_the_first_runs_through_both_doors(sim, tmp_path):
    """Copies of an identical request cost 0 however the run was reached: the first run, a resume
    from the checkpoint, and the CLI all count the same total."""
    df = duplicates()
    kw = dict(model="qwen-plus", base_url=sim.base_url, progress=False, prices=PRICES)
    first = batchframe.complete(df, "text", checkpoint=tmp_path / "py", **kw)
    again = batchframe.complete(df, "text", checkpoint=tmp_path / "py", **kw)
    assert again.attrs["batchframe"]["sent"] == 0
    total = first["cost"].sum()
    assert math.isclose(again["cost"].sum(), total) and math.isclose(again.attrs["batchframe"]["total_cost"], total)
    assert (first.groupby("text")["cost"].apply(lambda c: (c > 0).sum()) == 1).all()  # one billed row each
    stored = batchframe.load_checkpoint(tmp_path / "py")
    assert math.isclose(stored["cost"].sum(), total)  # the checkpoint sums to what was spent
    df.to_csv(tmp_path / "in.csv", index=False)
    for _ in range(2):  # the CLI, first run and resume
        assert cli(tmp_path / "in.csv", tmp_path / "out.csv", sim, "--prices", 1000, 1000) == 0
        out = pd.read_csv(tmp_path / "out.csv")
        assert math.isclose(out["cost"].sum(), total)


@pytest.mark.parametrize("prices,words", [
    (None, "needs prices"),
    ({"input": float("nan"), "output": 1.0}, "finite"),
    ({"input": -1.0, "output": 1.0}, ">= 0"),
    ({"input": float("inf"), "output": 1.0}, "finite"),
])
def test_a_budget_that_cannot_be_counted_is_refused_before_sending_through_both_doors(tmp_path, prices, words):
    with Simulator() as sim:
        with pytest.raises(ConfigError, match=words):
            batchframe.complete(frame(5), "text", model="unpriced-model-x", base_url=sim.base_url,
                                max_cost=1.0, max_tokens=10, prices=prices)
        frame(5).to_csv(tmp_path / "in.csv", index=False)
        extra = ["--prices", str(prices["input"]), str(prices["output"])] if prices else []
        assert main(["run", str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv"), "--prompt-col", "text",
                     "--model", "unpriced-model-x", "--base-url", sim.base_url, "--max-cost", "1",
                     "--max-tokens", "10", *extra]) == 2
        assert sim.stats()["requests"] == 0 and not (tmp_path / "o.csv.checkpoint").exists()


@pytest.mark.parametrize("tokenizer", [True, False])
def test_max_cost_holds_counting_the_first_wave(sim, monkeypatch, tokenizer):
    """300 rows at ~0.04 each and max_cost=0.5 with 64 calls in flight at once: never more than 0.5
    spent, the first wave included (a worst case is reserved for every call before it is sent),
    with Qwen's tokenizer counting the input or, without it, the byte bound."""
    if not tokenizer:
        import batchframe.pipeline.budget as budget

        monkeypatch.setattr(budget, "token_counter", lambda model: (len, budget.APPROXIMATE))
    df = pd.DataFrame({"text": [f"review {i}: " + "words " * 5 for i in range(300)]})
    out = batchframe.complete(df, "text", model="qwen-plus", base_url=sim.base_url, prices=PRICES,
                              max_cost=0.5, max_tokens=20, max_workers=64, progress=False)
    s = out.attrs["batchframe"]
    assert s["stop_reason"] == "budget" and s["cost"] <= 0.5 and out["cost"].sum() <= 0.5
    assert s["ok"] >= 1 and s["pending"] > 0
    assert sim.stats()["billed"] == s["ok"]  # what the server billed is what the frame shows


def test_on_budget_raise_carries_the_frame(sim):
    with pytest.raises(BudgetExceeded, match="max_cost") as info:
        batchframe.complete(frame(50), "text", model="qwen-plus", base_url=sim.base_url, prices=PRICES,
                            max_cost=0.01, max_tokens=20, progress=False, on_budget="raise")
    part = info.value.partial
    assert len(part) == 50 and (part["status"] == "pending").any()


def test_a_deadline_holds_against_a_server_asking_to_wait_forever(tmp_path):
    """429 with Retry-After: 999999999 and deadline_s=1: the run returns (rows pending), it does
    not wait out the Retry-After (pytest-timeout would end the test otherwise)."""
    with Simulator(throttle_rate=1.0, retry_after_s=999999999) as sim:
        out = batchframe.complete(frame(5), "text", model="qwen-plus", base_url=sim.base_url, deadline_s=1,
                                  progress=False, checkpoint=tmp_path / "ck")
    assert out.attrs["batchframe"]["stop_reason"] == "deadline", (out.attrs["batchframe"], out["status"].tolist(), sim.stats())
    assert (out["status"] == "pending").all()


def test_a_damaged_part_is_quarantined_with_a_warning_and_its_rows_rerun_through_both_doors(sim, tmp_path):
    df = frame(30)
    df.to_csv(tmp_path / "in.csv", index=False)
    for door in ("python", "cli"):
        ckpt = tmp_path / f"{door}.ck"
        args = dict(model="qwen-plus", base_url=sim.base_url, progress=False, checkpoint=ckpt)
        if door == "python":
            batchframe.complete(df, "text", **args)
        else:
            assert cli(tmp_path / "in.csv", tmp_path / "o.csv", sim, "--checkpoint", ckpt) == 0
        part = next(p for p in sorted(os.listdir(ckpt))
                    if p.startswith("part-") and pq.read_metadata(ckpt / p).num_rows)
        data = bytearray((ckpt / part).read_bytes())
        for i in range(8, 40):  # inside the data pages: the footer still reads
            data[i] ^= 0xFF
        (ckpt / part).write_bytes(bytes(data))
        before = sim.stats()["requests"]
        with pytest.warns(RuntimeWarning, match="re-run"):
            if door == "python":
                out = batchframe.complete(df, "text", **args)
                assert (out["status"] == "ok").all()
            else:
                assert cli(tmp_path / "in.csv", tmp_path / "o.csv", sim, "--checkpoint", ckpt) == 0
        assert sim.stats()["requests"] - before == 30  # its rows ran again
        assert (ckpt / f".corrupt-{part}").exists()  # set aside; its name stays (a reader may have
        pq.read_table(ckpt / part)                    # listed it), holding a valid part from now on


def test_a_run_that_fails_before_its_first_request_leaves_no_checkpoint_behind(tmp_path):
    """A missing column is found before anything opens; an answer that stops the run before any row
    was stored (a bad key) leaves no half-made checkpoint directory either."""
    with pytest.raises(ConfigError):
        batchframe.complete(frame(3), "nope", model="qwen-plus", simulate=True, checkpoint=tmp_path / "a")
    assert not (tmp_path / "a").exists()
    with Simulator(api_key="right") as sim:
        with pytest.raises(batchframe.RunFatalError):
            batchframe.complete(frame(3), "text", model="qwen-plus", base_url=sim.base_url, api_key="wrong",
                                checkpoint=tmp_path / "b", progress=False)
    assert not (tmp_path / "b").exists()


def test_the_cli_stopped_before_storing_anything_leaves_no_checkpoint_and_says_so(tmp_path, capsys, monkeypatch):
    frame(3).to_csv(tmp_path / "in.csv", index=False)
    monkeypatch.setenv("BATCHFRAME_API_KEY", "wrong")
    with Simulator(api_key="right") as sim:
        code = main(["run", str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv"), "--prompt-col", "text",
                     "--model", "qwen-plus", "--base-url", sim.base_url, "--no-progress"])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1 and not (tmp_path / "o.csv.checkpoint").exists() and not (tmp_path / "o.csv").exists()
    assert "no checkpoint left behind" in last and "saved in the checkpoint" not in last


def test_status_counts_pending_rows_of_a_checkpoint_made_from_python(sim, tmp_path, capsys):
    batchframe.complete(frame(20), "text", model="qwen-plus", base_url=sim.base_url, progress=False,
                        checkpoint=tmp_path / "ck", prices=PRICES, max_cost=0.02, max_tokens=20)
    assert main(["status", str(tmp_path / "ck"), "--json"]) == 0
    import json

    s = json.loads(capsys.readouterr().out)
    assert s["pending"] is not None and s["pending"] == 20 - s["rows"] and s["pending"] > 0
