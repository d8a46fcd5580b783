"""Thinking models: max_tokens spent on thinking leaves an empty answer; the run counts and says so."""

from __future__ import annotations

from batchframe.simulator import Simulator

from conftest import frame


def test_length_with_empty_content_is_counted_and_warned(capsys):
    df = frame(12)
    with Simulator() as sim:
        out = df.batchchat.complete(prompt_col="text", model="qwen3.5-plus", base_url=sim.base_url,
                                    enable_thinking=True, max_tokens=5, progress=True)
        stats = sim.stats()
    assert (out["status"] == "ok").all()  # the calls succeeded and were billed ...
    assert (out["finish_reason"] == "length").all()
    assert (out["response"].fillna("") == "").all()  # ... but every answer is empty
    assert (out["reasoning_tokens"] == 5).all() and (out["completion_tokens"] == 5).all()
    summary = out.attrs["batchframe"]
    assert summary["length_empty"] == 12
    assert summary["reasoning_tokens"] == 60 == stats["reasoning_tokens"]
    err = capsys.readouterr().err
    assert "12 rows stopped at max_tokens with an empty answer" in err


def test_enough_tokens_no_warning(capsys):
    with Simulator() as sim:
        out = frame(4).batchchat.complete(prompt_col="text", model="qwen3.5-plus", base_url=sim.base_url,
                                          enable_thinking=True, max_tokens=2000, progress=True)
    assert out.attrs["batchframe"]["length_empty"] == 0
    assert (out["finish_reason"] == "stop").all() and out["reasoning_content"].notna().all()
    assert "empty answer" not in capsys.readouterr().err
