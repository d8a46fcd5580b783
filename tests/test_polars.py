"""The Polars front door: the same run as complete(), a Polars frame in and out."""

from __future__ import annotations

import pandas as pd
import pytest

pl = pytest.importorskip("polars")

import batchframe  # noqa: E402
import batchframe.polars  # noqa: E402,F401  (registers pl.DataFrame.batchchat)
from batchframe import ConfigError  # noqa: E402

from conftest import frame  # noqa: E402


def polars_frame(n: int) -> "pl.DataFrame":
    return pl.from_pandas(frame(n)).with_columns(pl.Series("id", [f"row-{i}" for i in range(n)]))


def test_a_polars_frame_in_the_same_rows_and_answers_out(sim):
    df = polars_frame(12)
    out = df.batchchat.complete(prompt_col="text", model="qwen-plus", base_url=sim.base_url, progress=False)
    assert isinstance(out, pl.DataFrame) and out.height == 12
    assert out.columns[:2] == ["text", "id"] and out["id"].to_list() == df["id"].to_list()  # order kept
    assert out.schema["response"] == pl.String and out.schema["prompt_tokens"] == pl.Int64
    assert out.schema["cost"] == pl.Float64 and set(out["status"].to_list()) == {"ok"}
    want = batchframe.complete(frame(12), "text", model="qwen-plus", base_url=sim.base_url, progress=False)
    assert out["response"].to_list() == want["response"].tolist()


def test_rows_keyed_by_id_col_survive_a_reorder(sim, tmp_path):
    df, ckpt = polars_frame(20), tmp_path / "ck"
    kw = dict(prompt_col="text", model="qwen-plus", base_url=sim.base_url, progress=False, checkpoint=ckpt)
    first = df.batchchat.complete(id_col="id", **kw)
    sent = sim.stats()["requests"]
    again = df.reverse().batchchat.complete(id_col="id", **kw)
    assert sim.stats()["requests"] == sent  # nothing re-sent: the ids key the rows
    assert again["response"].to_list() == first["response"].reverse().to_list()


def test_without_id_col_rows_are_keyed_by_position_and_it_says_so(sim, tmp_path, caplog):
    df, ckpt = polars_frame(10), tmp_path / "ck"
    kw = dict(prompt_col="text", model="qwen-plus", base_url=sim.base_url, progress=False, checkpoint=ckpt)
    df.batchchat.complete(**kw)
    assert "keyed by position" in caplog.text
    sent = sim.stats()["requests"]
    df.batchchat.complete(**kw)
    assert sim.stats()["requests"] == sent  # same order: resumed
    df.tail(4).batchchat.complete(**kw)  # positions 0-3 now hold rows 6-9: their keys' requests differ
    assert sim.stats()["requests"] == sent  # ...but an identical request is reused whatever its key


def test_bad_id_col_and_other_inputs_fail_before_sending(sim):
    df = polars_frame(4)
    with pytest.raises(ConfigError, match="duplicate"):
        df.with_columns(pl.lit("same").alias("id")).batchchat.complete(
            prompt_col="text", model="qwen-plus", base_url=sim.base_url, id_col="id")
    with pytest.raises(ConfigError, match="empty in row 1"):
        df.with_columns(pl.Series("id", ["a", None, "c", "d"])).batchchat.complete(
            prompt_col="text", model="qwen-plus", base_url=sim.base_url, id_col="id")
    with pytest.raises(ConfigError, match="not a column"):
        df.batchchat.complete(prompt_col="nope", model="qwen-plus", base_url=sim.base_url)
    with pytest.raises(TypeError, match="temprature"):
        df.batchchat.complete(prompt_col="text", model="qwen-plus", base_url=sim.base_url, temprature=1)
    assert sim.stats()["requests"] == 0


def test_estimate_and_an_empty_frame(sim):
    df = polars_frame(6)
    est = df.batchchat.estimate(prompt_col="text", model="qwen-plus")
    assert est.rows == 6 and est.requests_to_send == 6
    out = df.head(0).batchchat.complete(prompt_col="text", model="qwen-plus", base_url=sim.base_url)
    assert out.height == 0 and "response" in out.columns and out.schema["status"] == pl.String


def test_importing_batchframe_does_not_import_polars():
    import subprocess
    import sys

    code = "import sys, batchframe; print('polars' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
