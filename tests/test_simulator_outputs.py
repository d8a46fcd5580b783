"""What a simulated completion returns beyond one text answer: n choices, logprobs, tool calls, and JSON
answers that break until a repair turn fixes them. Through the openai SDK over real HTTP."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from batchframe.simulator import Simulator
from batchframe.simulator._completion import count_tokens, split_tokens

ONE_WORD = {"role": "system", "content": "Answer with one word: positive, negative or neutral."}
SCHEMA = {"type": "json_schema", "json_schema": {"name": "review", "schema": {
    "type": "object", "required": ["sentiment", "confidence"],
    "properties": {"sentiment": {"enum": ["positive", "negative", "neutral"]},
                   "confidence": {"type": "number"}}}}}
TOOLS = [{"type": "function", "function": {"name": "record_sentiment", "parameters": {
             "type": "object", "properties": {"sentiment": {"type": "string"}, "stars": {"type": "integer"},
                                              "cues": {"type": "array", "items": {"type": "string"}}}}}},
         {"type": "function", "function": {"name": "flag", "parameters": {
             "type": "object", "properties": {"reason": {"type": "string"}}}}}]


@pytest.fixture
def client() -> Iterator[openai.OpenAI]:
    with Simulator(seed=3) as sim:
        yield openai.OpenAI(base_url=sim.base_url, api_key="x", max_retries=0)


def ask(client: openai.OpenAI, text: str, *, system: bool = True, **params: Any) -> Any:
    messages = ([ONE_WORD] if system else []) + [{"role": "user", "content": text}]
    return client.chat.completions.create(model="qwen-plus", messages=messages, **params)


# ---------------------------------------------------------------- n


def test_n_choices_vary_deterministically_and_usage_counts_them_all(client: openai.OpenAI) -> None:
    texts = [f"Review {i}: I love it, great value." for i in range(30)]
    answers = [[c.message.content for c in ask(client, t, n=4).choices] for t in texts]
    assert all(len(a) == 4 for a in answers)
    assert all(a[0] == "positive" for a in answers)  # the first choice is the plain answer
    assert any(len(set(a)) > 1 for a in answers)  # samples disagree sometimes...
    votes = [Counter(a).most_common(1)[0][0] for a in answers]
    assert votes.count("positive") >= 25  # ...but the majority holds
    flat = [x for a in answers for x in a]
    assert set(flat) <= {"positive", "negative", "neutral"}
    answer = ask(client, texts[0], n=4)
    assert [c.index for c in answer.choices] == [0, 1, 2, 3]
    assert answer.usage.completion_tokens == sum(count_tokens(c.message.content) for c in answer.choices)
    with Simulator(seed=3) as again:  # same seed, same draws: the same samples in another server
        other = openai.OpenAI(base_url=again.base_url, api_key="x", max_retries=0)
        assert [[c.message.content for c in ask(other, t, n=4).choices] for t in texts] == answers


def test_n_with_no_flips_and_with_thinking() -> None:
    with Simulator(sample_flip_rate=0.0) as sim:
        client = openai.OpenAI(base_url=sim.base_url, api_key="x", max_retries=0)
        answer = ask(client, "Terrible and slow.", n=3)
        assert [c.message.content for c in answer.choices] == ["negative"] * 3
        answer = client.chat.completions.create(model="qwen3.5-plus", n=2,
                                                messages=[{"role": "user", "content": "Great."}])
        reasoning = answer.usage.completion_tokens_details.reasoning_tokens
        assert reasoning == 2 * count_tokens(answer.choices[0].message.reasoning_content)


@pytest.mark.parametrize(("params", "message"), [
    ({"n": 5}, "Range of n should be [1, 4]"), ({"n": 0}, "`n`"),
    ({"top_logprobs": 2}, "requires `logprobs`"), ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"tools": []}, "`tools`"), ({"tools": [{"type": "function"}]}, "`tools`"),
    ({"tool_choice": "auto"}, "only allowed with `tools`"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
])
def test_bad_output_parameters(client: openai.OpenAI, params: dict[str, Any], message: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, "Great.", **params)
    assert caught.value.code == "InvalidParameter" and message in str(caught.value)


# ---------------------------------------------------------------- logprobs


def test_logprobs_shape_and_determinism(client: openai.OpenAI) -> None:
    answer = ask(client, "I love this, it is great.", system=False, logprobs=True, top_logprobs=3, n=2)
    for choice in answer.choices:
        content = choice.logprobs.content
        assert "".join(t.token for t in content) == choice.message.content
        assert [t.token for t in content] == split_tokens(choice.message.content)
        for entry in content:
            assert entry.logprob <= 0 and entry.bytes == list(entry.token.encode())
            assert len(entry.top_logprobs) == 3
            assert entry.token in [t.token for t in entry.top_logprobs]
            logprobs = [t.logprob for t in entry.top_logprobs]
            assert logprobs == sorted(logprobs, reverse=True)
            assert len({t.token for t in entry.top_logprobs}) == 3
    again = ask(client, "I love this, it is great.", system=False, logprobs=True, top_logprobs=3, n=2)
    # a second arrival is another attempt: other draws, same shape
    assert len(again.choices[0].logprobs.content) == len(answer.choices[0].logprobs.content)
    assert ask(client, "Great.").choices[0].logprobs is None
    plain = ask(client, "Great.", logprobs=True).choices[0].logprobs.content
    assert all(t.top_logprobs == [] for t in plain)


def test_first_token_logprob_tracks_the_confidence() -> None:
    with Simulator(sample_flip_rate=0.0) as sim:
        client = openai.OpenAI(base_url=sim.base_url, api_key="x", max_retries=0)
        sure = ask(client, "great excellent love amazing best", logprobs=True).choices[0]
        unsure = ask(client, "The box is blue.", logprobs=True).choices[0]
        assert sure.logprobs.content[0].logprob > unsure.logprobs.content[0].logprob


# ---------------------------------------------------------------- tools


def test_tool_calls(client: openai.OpenAI) -> None:
    answer = ask(client, "I love it, great!", tools=TOOLS)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "record_sentiment"
    arguments = json.loads(call.function.arguments)
    assert arguments == {"sentiment": "positive", "stars": 5, "cues": ["love", "great"]}
    assert answer.usage.completion_tokens == count_tokens(call.function.arguments)
    named = ask(client, "Awful.", tools=TOOLS, tool_choice={"type": "function", "function": {"name": "flag"}})
    call = named.choices[0].message.tool_calls[0]
    assert call.function.name == "flag" and "reason" in json.loads(call.function.arguments)
    assert ask(client, "Great.", tools=TOOLS, tool_choice="required").choices[0].message.tool_calls
    for text, params in (("Great.", {"tool_choice": "none"}), ("Great. [[notool]]", {}),
                         ("Great. [[notool]]", {"tool_choice": "auto"})):
        plain = ask(client, text, tools=TOOLS, **params).choices[0]
        assert plain.message.tool_calls is None and plain.message.content == "positive"
        assert plain.finish_reason == "stop"
    forced = ask(client, "Great. [[notool]]", tools=TOOLS, tool_choice="required").choices[0]
    assert forced.message.tool_calls  # the marker only lets "auto" decline


def test_bad_tool_arguments(client: openai.OpenAI) -> None:
    call = ask(client, "Great. [[badargs]]", tools=TOOLS).choices[0].message.tool_calls[0]
    with pytest.raises(json.JSONDecodeError):
        json.loads(call.function.arguments)


# ---------------------------------------------------------------- JSON answers and repairs


def chat(client: openai.OpenAI, messages: list[dict[str, Any]], **params: Any) -> str:
    answer = client.chat.completions.create(model="qwen-plus", messages=messages, **params)
    return answer.choices[0].message.content


def repair(messages: list[dict[str, Any]], answer: str, error: str) -> list[dict[str, Any]]:
    return [*messages, {"role": "assistant", "content": answer},
            {"role": "user", "content": f"Your answer failed: {error}. Answer again with valid JSON."}]


@pytest.mark.parametrize("response_format", [{"type": "json_object"}, SCHEMA])
def test_bad_json_is_fixed_by_one_repair_turn(client: openai.OpenAI, response_format: dict[str, Any]) -> None:
    messages = [{"role": "user", "content": "Awful, it broke. [[badjson]] Reply in JSON."}]
    broken = chat(client, messages, response_format=response_format)
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken)
    assert chat(client, messages, response_format=response_format) == broken  # every time, not a rate
    fixed = json.loads(chat(client, repair(messages, broken, "not JSON"), response_format=response_format))
    assert fixed["sentiment"] == "negative"  # answers the marked message, not the repair turn's text
    # without JSON mode the marker does nothing
    assert chat(client, [{"role": "user", "content": "Great [[badjson]]"}]) == \
        "The sentiment is positive: it mentions 'great'. [simulated answer]"


def test_two_markers_need_two_repairs(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Great! [[badjson]][[badjson]]"}]
    fmt = {"type": "json_object"}
    first = chat(client, messages, response_format=fmt)
    once = repair(messages, first, "not JSON")
    second = chat(client, once, response_format=fmt)
    with pytest.raises(json.JSONDecodeError):
        json.loads(second)
    assert json.loads(chat(client, repair(once, second, "still not JSON"), response_format=fmt)) == {
        "sentiment": "positive", "confidence": 0.72}


def test_bad_schema_parses_but_breaks_the_schema(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "I love it [[badschema]]"}]
    broken = json.loads(chat(client, messages, response_format=SCHEMA))
    assert broken == {"sentiment": ["positive"], "confidence": 0.72}
    fixed = json.loads(chat(client, repair(messages, json.dumps(broken), "sentiment: not a string"),
                            response_format=SCHEMA))
    assert fixed == {"sentiment": "positive", "confidence": 0.72}
    assert json.loads(chat(client, messages, response_format={"type": "json_object"})) == {
        "sentiment": ["positive"], "confidence": 0.72}
