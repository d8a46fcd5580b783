"""What an adversarial run broke, by class: leaked keys, bad token counts, inputs that crashed, output
that looked real. Each through the public API or the CLI, against servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os

import pandas as pd
import pytest
from aiohttp import web

import batchframe
from batchframe import ConfigError, RunFatalError
from batchframe.cli import main
from batchframe.simulator import ErrorRule, Simulator

from conftest import frame, serving


def secret_key() -> str:
    return "sk-" + "7f3a9c" * 6  # key-shaped, built at run time (no key-shaped literal in the repo)


def everything_under(path) -> bytes:
    out = b""
    for root, _, files in os.walk(path):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                out += fh.read()
    return out


# ---- 1. the key, echoed by a server, never leaks -------------------------------------------------

def test_a_401_echoing_the_key_leaks_it_nowhere(tmp_path, caplog, capsys):
    key = secret_key()
    rule = ErrorRule(match="", status=401, code="invalid_api_key", message="Incorrect API key provided:",
                     echo_authorization=True)
    with Simulator(error_rules=(rule,)) as sim:
        with pytest.raises(RunFatalError) as info:
            batchframe.complete(frame(5), "text", model="qwen-plus", base_url=sim.base_url, api_key=key,
                                checkpoint=tmp_path / "ck", progress=False)
        exc = info.value
        for text in (str(exc), repr(exc), exc.provider_message or "", caplog.text, capsys.readouterr().err):
            assert key not in text and "7f3a9c7f3a9c" not in text
        assert "[redacted]" in str(exc)  # the server's words are kept, the key is not
        frame(5).to_csv(tmp_path / "in.csv", index=False)
        os.environ["BATCHFRAME_API_KEY"] = key
        try:
            code = main(["run", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv"), "--prompt-col", "text",
                         "--model", "qwen-plus", "--base-url", sim.base_url, "--no-progress"])
        finally:
            del os.environ["BATCHFRAME_API_KEY"]
        err = capsys.readouterr().err
        assert code == 1 and key not in err and "run stopped" in err.splitlines()[-1]


@pytest.mark.parametrize("status,code", [(400, "InvalidParameter.Echo"), (500, "InternalError")])
def test_an_error_or_request_id_echoing_the_key_stays_out_of_columns_checkpoint_and_files(tmp_path, status, code):
    key = secret_key()
    rules = (ErrorRule(match="review number 1:", status=status, code=code, message="bad request from",
                       echo_authorization=True, echo_authorization_in_request_id=True),)
    df = frame(6)
    df.to_csv(tmp_path / "in.csv", index=False)
    with Simulator(error_rules=rules) as sim:
        out = batchframe.complete(df, "text", model="qwen-plus", base_url=sim.base_url, api_key=key,
                                  checkpoint=tmp_path / "ck", progress=False, max_attempts=2)
        bad = out[out["status"] == "failed"]
        assert len(bad) == 1 and "[redacted]" in bad["error"].iloc[0]
        assert all(key not in str(v) for v in out.astype(str).to_numpy().ravel())
        assert key.encode() not in everything_under(tmp_path / "ck")
        assert key not in pd.read_parquet(tmp_path / "ck").astype(str).to_string()
        os.environ["BATCHFRAME_API_KEY"] = key
        try:
            main(["run", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv"), "--prompt-col", "text",
                  "--model", "qwen-plus", "--base-url", sim.base_url, "--no-progress", "--max-attempts", "2"])
        finally:
            del os.environ["BATCHFRAME_API_KEY"]
        assert key.encode() not in (tmp_path / "out.csv").read_bytes()
        assert key.encode() not in everything_under(tmp_path / "out.csv.checkpoint")


# ---- a small server for answers the simulator never gives ----------------------------------------

@contextlib.contextmanager
def answering(make_body, headers=None):
    """An OpenAI-compatible server on 127.0.0.1 whose answer body is ``make_body(request_json)``."""
    async def chat(request: web.Request) -> web.Response:
        body = await request.json()  # the stdlib writes what orjson refuses (an integer of 2**70)
        return web.Response(text=json.dumps(make_body(body)), content_type="application/json",
                            headers=headers or {})

    with serving(chat) as url:
        yield url


def completion(content="positive", finish="stop", usage=None):
    return {"id": "chatcmpl-x", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
            "usage": usage if usage is not None else {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}


def test_a_request_id_header_echoing_the_key_is_redacted(tmp_path):
    key = secret_key()
    with answering(lambda body: completion(), headers={"x-request-id": f"req-1 Bearer {key}"}) as url:
        out = batchframe.complete(frame(3), "text", model="m", base_url=url, api_key=key,
                                  checkpoint=tmp_path / "ck", progress=False)
    assert (out["status"] == "ok").all() and key not in " ".join(out["request_id"].astype(str))
    assert "[redacted]" in out["request_id"].iloc[0] and key.encode() not in everything_under(tmp_path / "ck")


# ---- 2. a server's bad token counts never cost the run -------------------------------------------

@pytest.mark.parametrize("usage", [
    {"prompt_tokens": 7.5, "completion_tokens": 2, "total_tokens": 9.5},
    {"prompt_tokens": "abc", "completion_tokens": 2, "total_tokens": 4},
    {"prompt_tokens": 2 ** 70, "completion_tokens": 2, "total_tokens": 4},
    {"prompt_tokens": True, "completion_tokens": 2, "total_tokens": 4},
    {"prompt_tokens": {"n": 1}, "completion_tokens": 2, "total_tokens": 4},
    {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,
     "completion_tokens_details": {"reasoning_tokens": "many"}},
    "not an object",
])
def test_malformed_usage_keeps_the_answer_counts_what_is_valid_and_says_so(usage, capsys):
    with answering(lambda body: completion(usage=usage)) as url:
        out = batchframe.complete(frame(4), "text", model="m", base_url=url, progress=True,
                                  prices={"input": 1.0, "output": 1.0})
    assert (out["status"] == "ok").all() and (out["response"] == "positive").all()
    assert (out["completion_tokens"].dropna() == 2).all()  # what was valid is kept
    s = out.attrs["batchframe"]
    err = capsys.readouterr().err
    if isinstance(usage, dict) and usage.get("prompt_tokens") not in (5,):
        assert out["prompt_tokens"].isna().all()  # and what was not is unknown, not made up
    assert s["bad_usage"] == 4 and err.count("malformed token counts") == 1


# ---- 4. inputs that crashed: a clear error naming the option, or a row error ----------------------

def test_a_lone_surrogate_fails_its_row_only(sim):
    df = pd.DataFrame({"text": ["fine", "bad \ud800", "also fine"]}, dtype=object)  # (Arrow strings refuse it)
    out = batchframe.complete(df, "text", model="qwen-plus", base_url=sim.base_url, progress=False)
    assert out["status"].tolist() == ["ok", "failed", "ok"]
    assert out["error_code"].iloc[1] == "invalid_text" and sim.stats()["requests"] == 2


@pytest.mark.parametrize("kwargs,words", [
    (dict(timeout=float("inf")), "timeout= must be a finite"),
    (dict(timeout=float("nan")), "timeout= must be a finite"),
    (dict(qps=float("inf")), "qps= must be a finite"),
    (dict(max_cost="5"), "max_cost= must be a number"),
    (dict(retry_failed=5), "retry_failed="),
    (dict(checkpoint=123), "checkpoint= must be a directory path"),
    (dict(extra_body="x"), "extra_body= must be a dict"),
    (dict(prompt_col=["text"]), "prompt_col= must be a string"),
    (dict(max_workers=0), "max_workers= must be a whole number"),
    (dict(max_workers=2.5), "max_workers= must be a whole number"),
    (dict(deadline_s=-1), "deadline_s= must be >"),
    (dict(progress="yes"), "progress= must be True or False"),
    (dict(on_interrupt="later"), "on_interrupt= must be one of"),
    (dict(simulate={"latency": 0.5}), "latency_s"),
    (dict(simulate={"latncy_s": 0.5}), "did you mean 'latency_s'"),
    (dict(base_url="localhost:8000"), "base_url= must be an http"),
])
def test_every_option_is_checked_with_a_message_naming_it(sim, kwargs, words):
    args = dict(prompt_col="text", model="qwen-plus", base_url=sim.base_url)
    if "simulate" in kwargs:
        args.pop("base_url")
    args.update(kwargs)
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace("?", r"\?")):
        batchframe.complete(frame(3), **args)
    assert sim.stats()["requests"] == 0


def test_duplicate_column_names_are_refused_by_name(sim):
    df = pd.DataFrame([["a", "b"]], columns=["text", "text"])
    with pytest.raises(ConfigError, match=r"duplicate column names \['text'\]"):
        batchframe.complete(df, "text", model="qwen-plus", base_url=sim.base_url)


@pytest.mark.parametrize("flag,value,words", [("--timeout", "inf", "--timeout must be a finite"),
                                              ("--qps", "inf", "--qps must be a finite"),
                                              ("--max-cost", "nan", "--max-cost must be a finite")])
def test_the_cli_names_its_flag_on_a_bad_number(tmp_path, capsys, flag, value, words):
    frame(3).to_csv(tmp_path / "in.csv", index=False)
    code = main(["run", str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv"), "--prompt-col", "text",
                 "--model", "qwen-plus", "--simulate", flag, value])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], err
    assert not (tmp_path / "o.csv.checkpoint").exists()


# ---- 7. an empty answer is counted and reported ------------------------------------------------------

def test_content_null_is_an_empty_answer_counted_and_reported(capsys):
    with answering(lambda body: completion(content=None)) as url:
        out = batchframe.complete(frame(3), "text", model="m", base_url=url, progress=True)
    assert (out["status"] == "ok").all() and out["response"].isna().all()
    assert out.attrs["batchframe"]["empty_answers"] == 3 and "empty answer" in capsys.readouterr().err


# ---- 8. honest output ------------------------------------------------------------------------------

def test_simulated_answers_are_marked_where_the_data_goes(tmp_path):
    out = batchframe.complete(frame(3), "text", model="qwen-plus", simulate=True, progress=False)
    assert out["simulated"].all() and str(out["simulated"].dtype) == "boolean"
    frame(3).to_csv(tmp_path / "in.csv", index=False)
    assert main(["run", str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv"), "--prompt-col", "text",
                 "--model", "qwen-plus", "--simulate", "--no-progress"]) == 0
    assert pd.read_csv(tmp_path / "o.csv")["simulated"].all()
    with Simulator() as sim:  # a real endpoint's answers carry no such column
        real = batchframe.complete(frame(2), "text", model="qwen-plus", base_url=sim.base_url, progress=False)
    assert "simulated" not in real.columns


def test_arguments_are_checked_before_the_simulator_starts(caplog, tmp_path, capsys):
    with pytest.raises(ConfigError, match="model= is required"):
        batchframe.complete(frame(3), "text", simulate=True)
    assert "FAKE" not in caplog.text
    frame(3).to_csv(tmp_path / "in.csv", index=False)
    assert main(["run", str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv"), "--prompt-col", "text",
                 "--simulate"]) == 2
    err = capsys.readouterr().err
    assert "--model is required" in err and "FAKE" not in err


def test_the_cli_no_key_message_names_the_environment_not_api_key(tmp_path, capsys):
    frame(3).to_csv(tmp_path / "in.csv", index=False)
    assert main(["run", str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv"), "--prompt-col", "text",
                 "--model", "qwen-plus"]) == 2
    err = capsys.readouterr().err
    assert "DASHSCOPE_API_KEY" in err and "api_key=" not in err and "--simulate" in err


def test_an_unknown_output_format_hints_the_output_flag(tmp_path, capsys):
    frame(3).to_csv(tmp_path / "in.csv", index=False)
    assert main(["run", str(tmp_path / "in.csv"), "-o", str(tmp_path / "x.xlsx"), "--prompt-col", "text",
                 "--model", "qwen-plus", "--simulate"]) == 2
    assert "--output-format" in capsys.readouterr().err


def test_summary_costs_carry_no_float_noise(sim):
    out = batchframe.complete(frame(37), "text", model="qwen-plus", base_url=sim.base_url, progress=False,
                              prices={"input": 0.3, "output": 0.7})
    cost = out.attrs["batchframe"]["cost"]
    assert len(repr(cost)) <= 14 and math.isclose(cost, out["cost"].sum())
