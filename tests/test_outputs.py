"""Everything a completion returns, as columns: n samples, logprobs, tool calls, repairs — through
complete() and the CLI, kept by the checkpoint, the same on Polars and Dask."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

import batchframe
from batchframe import ConfigError
from batchframe.cli import main

TOOLS = [{"type": "function", "function": {"name": "label", "parameters": {
    "type": "object", "properties": {"sentiment": {"type": "string"}, "score": {"type": "integer"}}}}}]
JSON = dict(response_format={"type": "json_object"}, parse=True, system="Answer in JSON.")


def reviews(*texts: str) -> pd.DataFrame:
    return pd.DataFrame({"text": list(texts)})


def cli(tmp_path, sim, df, out, *extra) -> int:
    df.to_csv(tmp_path / "in.csv", index=False)
    return main(["run", str(tmp_path / "in.csv"), "-o", str(tmp_path / out), "--prompt-col", "text",
                 "--model", "qwen-plus", "--base-url", sim.base_url, "--no-progress", *map(str, extra)])


# ---- 1. n samples ------------------------------------------------------------------------------

def test_n_samples_give_every_choice_and_bill_once(sim, tmp_path):
    df = reviews("great, works well", "broken and slow", "great, works well")
    out = batchframe.complete(df, "text", model="qwen-plus", base_url=sim.base_url, progress=False, n=4,
                              prices={"input": 1.0, "output": 1.0})
    assert all(isinstance(r, list) and len(r) == 4 for r in out["responses"])
    assert (out["response"] == out["responses"].str[0]).all()  # response is the first choice
    vote = out["responses"].map(lambda rs: max(set(rs), key=rs.count))
    assert vote.tolist()[0] == out["response"].tolist()[0]
    assert sim.stats()["requests"] == 2  # dedupe unchanged: identical rows sent once
    assert out["cost"].iloc[2] == 0 and out["cost"].iloc[0] > 0  # the request is billed once
    assert cli(tmp_path, sim, df, "o.parquet", "--param", "n=3") == 0
    got = pd.read_parquet(tmp_path / "o.parquet")
    assert pq.read_schema(tmp_path / "o.parquet").field("responses").type.value_type.equals(
        pq.read_schema(tmp_path / "o.parquet").field("response").type) and len(got["responses"][0]) == 3


def test_no_n_no_responses_column_and_bad_n_refused(sim):
    out = batchframe.complete(reviews("a b"), "text", model="qwen-plus", base_url=sim.base_url, progress=False)
    assert "responses" not in out.columns and "logprobs" not in out.columns
    with pytest.raises(ConfigError, match="n= must be"):
        batchframe.complete(reviews("a"), "text", model="qwen-plus", base_url=sim.base_url, n=0)


# ---- 2. logprobs ---------------------------------------------------------------------------------

def test_logprobs_per_token_with_a_confidence_column(sim, tmp_path):
    out = batchframe.complete(reviews("great", "terrible"), "text", model="qwen-plus", base_url=sim.base_url,
                              progress=False, logprobs=True, top_logprobs=2, logprob_summary=["mean", "first"])
    tokens = out["logprobs"].iloc[0]
    assert isinstance(tokens, list) and {"token", "logprob", "top_logprobs"} <= set(tokens[0])
    assert len(tokens[0]["top_logprobs"]) == 2
    assert "".join(t["token"] for t in tokens) == out["response"].iloc[0]
    mean = sum(t["logprob"] for t in tokens) / len(tokens)
    assert out["logprob_mean"].iloc[0] == pytest.approx(mean) and out["logprob_first"].iloc[0] == tokens[0]["logprob"]
    two = batchframe.complete(reviews("great"), "text", model="qwen-plus", base_url=sim.base_url, progress=False,
                              logprobs=True, n=2)
    assert len(two["logprobs"].iloc[0]) == 2 and isinstance(two["logprobs"].iloc[0][0], list)  # one per choice
    assert cli(tmp_path, sim, reviews("great"), "o.csv", "--param", "logprobs=true", "--logprob-summary", "mean") == 0
    row = pd.read_csv(tmp_path / "o.csv").iloc[0]
    assert isinstance(json.loads(row["logprobs"]), list) and row["logprob_mean"] < 0  # CSV holds JSON text
    with pytest.raises(ConfigError, match="logprob_summary= needs logprobs=True"):
        batchframe.complete(reviews("a"), "text", model="qwen-plus", base_url=sim.base_url, logprob_summary="mean")


# ---- 3. tool calls -------------------------------------------------------------------------------

def test_tool_calls_as_a_column_arguments_parsed_in_a_frame_text_in_files(sim, tmp_path):
    df = reviews("great product", "no tool here [[notool]]")
    out = batchframe.complete(df, "text", model="qwen-plus", base_url=sim.base_url, progress=False, tools=TOOLS)
    call = out["tool_calls"].iloc[0]
    assert out["status"].tolist() == ["ok", "ok"] and out["finish_reason"].iloc[0] == "tool_calls"
    assert pd.isna(out["response"].iloc[0]) and call[0]["name"] == "label"
    assert isinstance(call[0]["arguments"], dict) and call[0]["arguments"]["sentiment"] == "positive"
    assert out["tool_calls"].iloc[1] is None and isinstance(out["response"].iloc[1], str)
    assert out.attrs["batchframe"]["empty_answers"] == 0  # a tool call is an answer
    bad = batchframe.complete(reviews("x [[badargs]]"), "text", model="qwen-plus", base_url=sim.base_url,
                              progress=False, tools=TOOLS)
    assert isinstance(bad["tool_calls"].iloc[0][0]["arguments"], str)  # not JSON: kept as written
    assert cli(tmp_path, sim, df, "o.csv", "--param", "tools=" + json.dumps(TOOLS)) == 0
    text = pd.read_csv(tmp_path / "o.csv")["tool_calls"].iloc[0]
    assert json.loads(text)[0]["name"] == "label"  # JSON text in files


# ---- 4. repairs ----------------------------------------------------------------------------------

def test_a_broken_json_answer_is_repaired_billed_and_counted(sim, tmp_path):
    df = reviews("good [[badjson]]", "bad [[badjson]] [[badjson]] [[badjson]]", "fine")
    kw = dict(model="qwen-plus", base_url=sim.base_url, progress=False, prices={"input": 1.0, "output": 1.0},
              checkpoint=tmp_path / "ck", **JSON)
    out = batchframe.complete(df, "text", max_repairs=1, **kw)
    assert out["repairs"].tolist() == [1, 1, 0] and out["attempts"].tolist() == [1, 1, 1]
    assert out["parse_error"].isna().tolist() == [True, False, True]  # the last repair failed too: kept
    assert out["sentiment"].iloc[0] == "positive"
    s = out.attrs["batchframe"]
    assert s["repairs"] == 2 and s["repaired"] == 1 and s["sent"] == 5
    assert sim.stats()["billed"] == 5 and out["cost"].sum() == pytest.approx(s["cost"])  # repairs billed
    sent = sim.stats()["requests"]
    again = batchframe.complete(df, "text", max_repairs=1, **kw)
    assert sim.stats()["requests"] == sent and again["repairs"].tolist() == [1, 1, 0]  # resume: same columns
    more = batchframe.complete(df, "text", max_repairs=4, **kw)  # not in the hash: only the broken row re-asked
    assert more["parse_error"].isna().all() and sim.stats()["requests"] > sent
    assert more.attrs["batchframe"]["reused"] == 2


def test_repairs_refused_without_json_or_with_n_and_not_for_truncated_answers(sim):
    with pytest.raises(ConfigError, match="max_repairs= needs a JSON response_format"):
        batchframe.complete(reviews("a"), "text", model="qwen-plus", base_url=sim.base_url, max_repairs=1)
    with pytest.raises(ConfigError, match="n=1"):
        batchframe.complete(reviews("a"), "text", model="qwen-plus", base_url=sim.base_url, max_repairs=1, n=2, **JSON)
    out = batchframe.complete(reviews("good [[badjson]]"), "text", model="qwen-plus", base_url=sim.base_url,
                              progress=False, max_repairs=2, max_tokens=3, **JSON)
    assert out["finish_reason"].iloc[0] == "length" and out["repairs"].iloc[0] == 0
    assert "cut off at max_tokens" in out["parse_error"].iloc[0] and sim.stats()["requests"] == 1


def test_repairs_through_the_cli(sim, tmp_path):
    df = reviews("good [[badjson]]", "fine")
    assert cli(tmp_path, sim, df, "o.csv", "--system", "Answer in JSON.", "--param",
               'response_format={"type": "json_object"}', "--parse", "--max-repairs", "2") == 0
    got = pd.read_csv(tmp_path / "o.csv")
    assert got["repairs"].tolist() == [1, 0] and got["parse_error"].isna().all()


# ---- 5. kept by the checkpoint, the same on the other doors ------------------------------------------

def test_resume_gives_back_the_same_output_columns(sim, tmp_path):
    df = reviews("great", "awful")
    kw = dict(model="qwen-plus", base_url=sim.base_url, progress=False, checkpoint=tmp_path / "ck", n=3,
              logprobs=True, tools=TOOLS)
    first = batchframe.complete(df, "text", **kw)
    sent = sim.stats()["requests"]
    again = batchframe.complete(df, "text", **kw)
    assert sim.stats()["requests"] == sent
    for col in ("responses", "logprobs", "tool_calls"):
        assert again[col].tolist() == first[col].tolist(), col
    stored = batchframe.load_checkpoint(tmp_path / "ck")
    assert isinstance(stored["responses"].iloc[0], list) and isinstance(stored["tool_calls"].iloc[0], str)


def test_polars_door_has_the_output_columns(sim):
    pl = pytest.importorskip("polars")
    import batchframe.polars  # noqa: F401

    out = pl.DataFrame({"text": ["great", "bad"]}).batchchat.complete(
        prompt_col="text", model="qwen-plus", base_url=sim.base_url, progress=False, n=2, logprobs=True)
    assert out.schema["responses"] == pl.List(pl.String) and out["responses"].list.len().to_list() == [2, 2]
    assert isinstance(out["logprobs"][0].to_list(), list)


def test_dask_door_has_the_output_columns(sim):
    pytest.importorskip("dask.dataframe")
    import dask.dataframe as dd

    import batchframe.dask  # noqa: F401

    ddf = dd.from_pandas(reviews("great", "bad", "fine", "meh"), npartitions=2)
    out = ddf.batchchat.complete(prompt_col="text", model="qwen-plus", base_url=sim.base_url, n=2).compute(
        scheduler="sync")
    assert out["responses"].map(len).tolist() == [2, 2, 2, 2]


def test_an_n_the_endpoint_refuses_stops_the_run_instead_of_failing_every_row(sim):
    with pytest.raises(batchframe.RunFatalError, match="Range of n"):
        batchframe.complete(reviews(*[f"r{i}" for i in range(40)]), "text", model="qwen-plus",
                            base_url=sim.base_url, progress=False, n=9)
    assert sim.stats()["requests"] < 40
