"""complete(client=...): the user's own openai client carries every call of a run, through the same
pipeline (checkpoint, resume, redaction, Batch File), with its own base URL, key and headers and with
its retries off. Real sockets to the simulator or a small server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os

import openai
import pandas as pd
import pytest
from aiohttp import web

import batchframe
from batchframe import ConfigError, RunFatalError
from batchframe.simulator import ErrorRule, Simulator

from conftest import frame, serving


def secret_key() -> str:
    return "sk-" + "c11e47" * 6  # key-shaped, built at run time


def everything_under(path) -> bytes:
    out = b""
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                out += fh.read()
    return out


def echo(body: dict) -> str:
    return "echo: " + body["messages"][-1]["content"]


CLIENTS = pytest.mark.parametrize("kind", ["sync", "async"])


def make_client(kind: str, base_url: str, **kw):
    kw.setdefault("api_key", secret_key())
    return (openai.OpenAI if kind == "sync" else openai.AsyncOpenAI)(base_url=base_url, **kw)


@contextlib.contextmanager
def recording(status: int = 200):
    """A chat server on 127.0.0.1 that records each request's headers and answers ``status``."""
    seen: list[dict] = []

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append({k.lower(): v for k, v in request.headers.items()})
        if status != 200:
            return web.json_response({"error": {"message": "try later", "code": "InternalError"}}, status=status)
        answer = {"id": "c", "object": "chat.completion", "model": body["model"],
                  "choices": [{"index": 0, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": echo(body)}}],
                  "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
        return web.Response(text=json.dumps(answer), content_type="application/json")

    with serving(chat) as url:
        yield url, seen


@CLIENTS
def test_a_users_client_gives_the_same_frame_as_base_url(kind):
    df = frame(40)
    with Simulator(seed=5, responder=echo) as sim:
        ref = batchframe.complete(df, "text", model="qwen-plus", base_url=sim.base_url, progress=False)
        client = make_client(kind, sim.base_url)
        out = df.batchchat.complete(prompt_col="text", model="qwen-plus", client=client, progress=False)
    assert (out["status"] == "ok").all()
    assert out["response"].tolist() == ref["response"].tolist() == [echo({"messages": [{"content": t}]})
                                                                     for t in df["text"]]
    assert out["prompt_tokens"].tolist() == ref["prompt_tokens"].tolist()


@CLIENTS
def test_its_headers_and_key_reach_the_server_and_its_own_retries_are_off(kind):
    key = secret_key()
    with recording() as (url, seen):
        client = make_client(kind, url, default_headers={"X-Gateway-Team": "annotation"})
        out = batchframe.complete(frame(3), "text", model="m", client=client, progress=False)
    assert (out["status"] == "ok").all() and len(seen) == 3
    assert all(h["x-gateway-team"] == "annotation" and h["authorization"] == f"Bearer {key}" for h in seen)
    with recording(status=500) as (url, seen):
        client = make_client(kind, url, max_retries=5)  # batchframe's engine owns retries
        out = batchframe.complete(frame(1), "text", model="m", client=client, progress=False, max_attempts=2)
    assert out["status"].tolist() == ["failed"] and out["attempts"].tolist() == [2]
    assert len(seen) == 2  # the engine's two attempts, none of the client's five


def test_the_client_is_the_endpoint_and_key_so_nothing_else_may_name_them(sim):
    client = openai.OpenAI(base_url=sim.base_url, api_key="x")
    for kw, words in [({"base_url": sim.base_url}, "drop base_url="), ({"api_key": "k"}, "drop api_key="),
                      ({"simulate": True}, "drop simulate="), ({"local": True}, "drop local=")]:
        with pytest.raises(ConfigError, match=words):
            batchframe.complete(frame(2), "text", model="qwen-plus", client=client, **kw)
    with pytest.raises(ConfigError, match="client= must be an openai.OpenAI or openai.AsyncOpenAI"):
        batchframe.complete(frame(2), "text", model="qwen-plus", client=object())
    with pytest.raises(ConfigError, match="needs an openai.OpenAI client"):
        batchframe.complete(frame(2), "text", model="qwen-plus", mode="file",
                            client=openai.AsyncOpenAI(base_url=sim.base_url, api_key="x"))
    assert sim.stats()["requests"] == 0


def test_no_environment_key_is_needed_nor_sent(sim, monkeypatch):
    monkeypatch.setenv("BATCHFRAME_API_KEY", "sk-from-the-environment")
    with recording() as (url, seen):
        client = openai.OpenAI(base_url=url, api_key="the-clients-own")
        out = batchframe.complete(frame(2), "text", model="m", client=client, progress=False)
    assert (out["status"] == "ok").all() and {h["authorization"] for h in seen} == {"Bearer the-clients-own"}


@CLIENTS
def test_the_clients_key_echoed_by_a_server_is_redacted_everywhere(kind, tmp_path, caplog):
    key = secret_key()
    rules = (ErrorRule(match="review number 1:", status=400, code="InvalidParameter.Echo", message="bad request",
                       echo_authorization=True, echo_authorization_in_request_id=True),)
    with Simulator(error_rules=rules) as sim:
        out = batchframe.complete(frame(4), "text", model="qwen-plus", client=make_client(kind, sim.base_url),
                                  checkpoint=tmp_path / "ck", progress=False)
    bad = out[out["status"] == "failed"]
    assert len(bad) == 1 and "[redacted]" in bad["error"].iloc[0]
    assert all(key not in str(v) for v in out.astype(str).to_numpy().ravel())
    assert key.encode() not in everything_under(tmp_path / "ck") and key not in caplog.text
    fatal = (ErrorRule(match="", status=401, code="invalid_api_key", message="Incorrect API key:",
                       echo_authorization=True),)
    with Simulator(error_rules=fatal) as sim:
        with pytest.raises(RunFatalError) as info:
            batchframe.complete(frame(3), "text", model="qwen-plus", client=make_client(kind, sim.base_url),
                                progress=False)
    assert key not in str(info.value) and key not in repr(info.value) and "[redacted]" in str(info.value)


def test_a_checkpoint_resumes_under_the_clients_base_url(tmp_path):
    df = frame(30)
    with Simulator(responder=echo) as sim:
        first = batchframe.complete(df, "text", model="qwen-plus", base_url=sim.base_url,
                                    checkpoint=tmp_path / "ck", progress=False)
        sim.reset_stats()
        again = batchframe.complete(df, "text", model="qwen-plus", checkpoint=tmp_path / "ck", progress=False,
                                    client=openai.OpenAI(base_url=sim.base_url + "/", api_key="x"))
        assert sim.stats()["requests"] == 0  # the same endpoint, the same request hashes: all reused
    assert again["response"].tolist() == first["response"].tolist()


def test_batch_file_mode_drives_the_clients_files_and_batches(tmp_path):
    with Simulator(seed=2, responder=echo) as sim:
        client = openai.OpenAI(base_url=sim.base_url, api_key=secret_key())
        out = batchframe.complete(frame(25), "text", model="qwen-plus", client=client, mode="file", poll_s=0.01,
                                  checkpoint=tmp_path / "ck", progress=False)
        assert sim.stats()["lines"] == 25 and sim.stats()["requests"] == 0
    assert (out["status"] == "ok").all() and out["response"].iloc[3] == "echo: review number 3: it works fine"
    assert secret_key().encode() not in everything_under(tmp_path / "ck")


def test_dask_refuses_a_client_and_batch_file_mode(sim):
    dd = pytest.importorskip("dask.dataframe")
    import batchframe.dask  # noqa: F401

    ddf = dd.from_pandas(frame(4), npartitions=2)
    with pytest.raises(ConfigError, match="client= is not supported on Dask: an openai client cannot be pickled"):
        ddf.batchchat.complete(prompt_col="text", model="qwen-plus",
                               client=openai.OpenAI(base_url=sim.base_url, api_key="x"))
    for mode in ("file", "auto"):
        with pytest.raises(ConfigError, match=f"mode='{mode}' is not supported on Dask"):
            ddf.batchchat.complete(prompt_col="text", model="qwen-plus", base_url=sim.base_url, mode=mode)
    assert sim.stats()["requests"] == 0
