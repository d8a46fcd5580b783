"""Opt-in: the real Batch Chat API. Runs only with DASHSCOPE_API_KEY set (it costs a few fen)."""

from __future__ import annotations

import os

import pandas as pd
import pytest


pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.environ.get("DASHSCOPE_API_KEY"), reason="needs DASHSCOPE_API_KEY"),
]


def test_three_rows_through_the_real_batch_endpoint(tmp_path):
    df = pd.DataFrame({"review": ["Great kettle, boils fast.", "Broke after two days.", "It is a kettle."]})
    out = df.batchchat.complete(prompt_col="review", model="qwen-flash", max_tokens=5, timeout=1800,
                                system="Answer with one word: positive, negative or neutral.",
                                checkpoint=tmp_path / "ck", progress=False)
    assert (out["status"] == "ok").all(), out[["status", "error"]]
    assert (out["prompt_tokens"] > 0).all() and out["cost"].notna().all()
    key = os.environ["DASHSCOPE_API_KEY"]
    assert key not in repr(out.attrs) and not any(key in str(p) for p in tmp_path.rglob("*"))
    for f in (tmp_path / "ck").iterdir():
        assert key.encode() not in f.read_bytes()
    again = df.batchchat.complete(prompt_col="review", model="qwen-flash", max_tokens=5, timeout=1800,
                                  system="Answer with one word: positive, negative or neutral.",
                                  checkpoint=tmp_path / "ck", progress=False)
    assert again.attrs["batchframe"]["sent"] == 0
