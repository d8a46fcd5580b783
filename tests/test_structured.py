"""Structured output: response_format forms, parsing answers into columns, parse errors, warnings."""

from __future__ import annotations

import logging
from typing import Literal, Optional

import orjson
import pandas as pd
import pytest
from pydantic import BaseModel

from batchframe import ConfigError
from batchframe.rows.structured import Structured, parse_answer, prepare
from batchframe.simulator import Simulator
from batchframe.simulator._responder import default_responder

from conftest import frame


class Review(BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]
    confidence: float
    reason: str


class Rated(BaseModel):
    sentiment: str
    star_rating: int
    note: Optional[str] = None


SCHEMA = {"type": "object", "properties": {"sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
                                           "score": {"type": "integer"}},
          "required": ["sentiment", "score"]}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "label", "schema": SCHEMA}}


def run(df, sim, **kw):
    kw.setdefault("model", "qwen-plus")
    kw.setdefault("progress", False)
    kw.setdefault("prompt_col", "text")
    kw.setdefault("system", "Answer in JSON.")
    return df.batchchat.complete(base_url=sim.base_url, **kw)


# ---- prepare: the forms response_format takes ------------------------------------------------------

def test_a_pydantic_model_becomes_a_json_schema_and_turns_parsing_on():
    params, st = prepare({"response_format": Review, "temperature": 0}, None)
    fmt = params["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Review"
    assert fmt["json_schema"]["schema"] == Review.model_json_schema()
    orjson.dumps(params)  # JSON-serialisable: it goes into the request and its hash
    assert st.parse and st.model is Review and st.fields == ["sentiment", "confidence", "reason"]
    assert params["temperature"] == 0


@pytest.mark.parametrize("fmt,parse,expect_parse,fields", [
    ({"type": "json_object"}, None, False, None),
    ({"type": "json_object"}, True, True, None),
    (JSON_SCHEMA, None, False, ["sentiment", "score"]),
    (JSON_SCHEMA, True, True, ["sentiment", "score"]),
    (Review, False, False, ["sentiment", "confidence", "reason"]),
])
def test_parse_plan(fmt, parse, expect_parse, fields):
    _, st = prepare({"response_format": fmt}, parse)
    assert st.parse is expect_parse and st.fields == fields


@pytest.mark.parametrize("params,parse,match", [
    ({}, True, "needs response_format"),
    ({"response_format": {"type": "text"}}, True, "JSON response_format"),
    ({"response_format": {"type": "xml"}}, None, "not one of"),
    ({"response_format": "json"}, None, "response_format must be"),
    ({"response_format": dict}, None, "response_format must be"),
    ({"response_format": {"type": "json_schema", "json_schema": "x"}}, None, "json_schema"),
    ({"response_format": {"type": "json_object"}}, "yes", "parse must be"),
])
def test_bad_forms_are_config_errors(params, parse, match):
    with pytest.raises(ConfigError, match=match):
        prepare(params, parse)


def test_no_response_format_no_plan():
    assert prepare({"temperature": 1}, None) == ({"temperature": 1}, None)
    assert prepare({"response_format": {"type": "text"}}, None)[1] is None


# ---- parse_answer: one answer ----------------------------------------------------------------------

SCHEMA_PLAN = Structured(response_format=JSON_SCHEMA, parse=True, schema=SCHEMA)
OBJECT_PLAN = Structured(response_format={"type": "json_object"}, parse=True)
MODEL_PLAN = Structured(response_format={"type": "json_schema"}, parse=True, model=Review)


@pytest.mark.parametrize("plan,text,value,error", [
    (OBJECT_PLAN, '{"a": 1, "b": [1, 2]}', {"a": 1, "b": [1, 2]}, None),
    (OBJECT_PLAN, '```json\n{"a": 1}\n```', {"a": 1}, None),
    (OBJECT_PLAN, "[1, 2]", None, "expected a JSON object"),
    (OBJECT_PLAN, "positive", None, "not valid JSON"),
    (OBJECT_PLAN, "", None, "empty response"),
    (OBJECT_PLAN, None, None, "empty response"),
    (SCHEMA_PLAN, '{"sentiment": "positive", "score": 5}', {"sentiment": "positive", "score": 5}, None),
    (SCHEMA_PLAN, '{"sentiment": "positive"}', None, "missing required"),
    (SCHEMA_PLAN, '{"sentiment": "positive", "score": "5"}', None, "'score': expected integer"),
    (SCHEMA_PLAN, '{"sentiment": "positive", "score": true}', None, "'score': expected integer"),
    (SCHEMA_PLAN, '{"sentiment": "meh", "score": 5}', None, "not one of"),
    (MODEL_PLAN, '{"sentiment": "neutral", "confidence": 0.5, "reason": "x"}',
     {"sentiment": "neutral", "confidence": 0.5, "reason": "x"}, None),
    (MODEL_PLAN, '{"sentiment": "great", "confidence": 0.5, "reason": "x"}', None, "sentiment"),
    (MODEL_PLAN, '{"sentiment": "neutral"}', None, "confidence"),
    (MODEL_PLAN, "not json", None, "json"),
])
def test_parse_answer(plan, text, value, error):
    got, err = parse_answer(text, plan)
    assert got == value
    if error is None:
        assert err is None
    else:
        assert error.lower() in err.lower()


# ---- end to end against the simulator ---------------------------------------------------------------

def test_pydantic_model_answers_become_typed_columns(reviews):
    seen = []

    def responder(body):
        seen.append(body)
        return default_responder(body)

    df = reviews.head(30)
    with Simulator(responder=responder) as sim:
        out = run(df, sim, prompt_col="review", response_format=Review)
    fmt = seen[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["title"] == "Review"
    result_end = list(out.columns).index("cost")
    assert list(out.columns[result_end + 1:]) == ["sentiment", "confidence", "reason", "parse_error"]
    assert (out["status"] == "ok").all() and out["parse_error"].isna().all()
    assert str(out["sentiment"].dtype) == "string" and str(out["confidence"].dtype) == "Float64"
    assert set(out["sentiment"]) <= {"positive", "negative", "neutral"}
    assert out.attrs["batchframe"]["parse_errors"] == 0


def test_bad_answers_keep_status_ok_and_record_parse_error():
    def responder(body):
        text = body["messages"][-1]["content"]
        if "7" in text:
            return "Sure! Here is the JSON: {"
        if "8" in text:
            return '{"sentiment": "ecstatic", "confidence": 1.0, "reason": "x"}'
        return default_responder(body)

    df = frame(10)
    with Simulator(responder=responder) as sim:
        out = run(df, sim, response_format=Review)
    assert (out["status"] == "ok").all()
    assert out["parse_error"].notna().tolist() == [i in (7, 8) for i in range(10)]
    assert out.loc[[7, 8], "sentiment"].isna().all() and out.loc[0:6, "sentiment"].notna().all()
    assert out.loc[7, "response"] == "Sure! Here is the JSON: {"  # the raw text stays
    assert out.attrs["batchframe"]["parse_errors"] == 2


def test_json_schema_dict_and_plain_json_object(reviews):
    df = reviews.head(10)
    with Simulator() as sim:
        a = run(df, sim, prompt_col="review", response_format=JSON_SCHEMA, parse=True)
        b = run(df, sim, prompt_col="review", response_format={"type": "json_object"}, parse=True)
        c = run(df, sim, prompt_col="review", response_format={"type": "json_object"})
    assert str(a["score"].dtype) == "Int64" and a["parse_error"].isna().all()
    assert {"sentiment", "confidence", "parse_error"} <= set(b.columns)  # keys from the answers
    assert "parse_error" not in c.columns  # no parse asked: the answer stays text in `response`
    assert c["response"].str.startswith("{").all()


def test_failed_rows_are_not_parsed_and_prefix_applies():
    df = frame(6)
    df.loc[2, "text"] = "bad [[moderate]]"
    with Simulator() as sim:
        out = run(df, sim, response_format=Review, prefix="llm_")
    assert out.loc[2, "llm_status"] == "failed"
    assert pd.isna(out.loc[2, "llm_sentiment"]) and pd.isna(out.loc[2, "llm_parse_error"])
    assert out.drop(index=2)["llm_sentiment"].notna().all()


def test_parsed_column_clash_is_refused_before_sending(reviews):
    df = reviews.head(3).assign(sentiment="truth")
    with Simulator() as sim:
        with pytest.raises(ConfigError, match="clash"):
            run(df, sim, prompt_col="review", response_format=Review)
        assert sim.stats()["requests"] == 0
        out = run(df, sim, prompt_col="review", response_format=Review, suffix="_llm")
    assert out["sentiment"].eq("truth").all() and out["sentiment_llm"].notna().all()


def test_parsed_columns_on_a_partial_result(tmp_path):
    with Simulator() as sim:
        out = run(frame(40), sim, response_format=Rated, max_workers=2, max_cost=1e-4, max_tokens=50,
                  prices={"input": 1.0, "output": 1.0}, checkpoint=tmp_path / "ck")
    assert "star_rating" in out.columns and str(out["star_rating"].dtype) == "Int64"
    pending = out["status"] == "pending"
    assert pending.any() and out.loc[pending, "star_rating"].isna().all()


@pytest.mark.parametrize("kw,warned", [
    (dict(system=None), True),                            # no "json" anywhere
    (dict(system="Reply in JSON."), False),
    (dict(system=None, template="Return JSON for: {text}", prompt_col=None), False),
    (dict(system=None, text_suffix=" as json"), False),   # in every prompt
])
def test_warns_when_dashscope_json_mode_lacks_the_word_json(caplog, kw, warned):
    kw = dict(kw)
    df = frame(5)
    if kw.pop("text_suffix", None):
        df["text"] = df["text"] + " as json"
    with caplog.at_level(logging.WARNING, logger="batchframe"):
        df.batchchat.complete(model="qwen-plus", simulate=True, progress=False,
                              response_format={"type": "json_object"}, **{"prompt_col": "text", **kw})
    hits = [r for r in caplog.records if 'word "json"' in r.getMessage()]
    assert bool(hits) is warned
    if warned:
        assert "5 of 5 rows" in hits[0].getMessage()


def test_no_json_warning_off_dashscope(caplog):
    with Simulator() as sim, caplog.at_level(logging.WARNING, logger="batchframe"):
        run(frame(3), sim, system=None, response_format={"type": "json_object"})
    assert not [r for r in caplog.records if 'word "json"' in r.getMessage()]


def test_parsed_columns_on_the_partial_frame_of_a_fatal_error():
    from batchframe import RunFatalError

    with Simulator(api_key="right-key") as sim:
        with pytest.raises(RunFatalError) as info:
            run(frame(20), sim, response_format=Review, api_key="wrong-key", max_workers=2)
    partial = info.value.partial
    assert {"sentiment", "confidence", "reason", "parse_error"} <= set(partial.columns)
