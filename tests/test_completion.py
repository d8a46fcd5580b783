"""completion.py: what a server's answer or error body becomes, as tables of cases. A malformed usage
never costs the answer: valid counts are kept, the rest are None and named in ``bad_usage``."""

from __future__ import annotations

import json
import math

import orjson
import pytest

from batchframe.engine.completion import count, error_reply, parse_completion
from batchframe.records import Result


def body(usage=None, *, content="fine", finish="stop", message=None, **extra):
    choice = {"index": 0, "message": message if message is not None else {"role": "assistant", "content": content},
              "finish_reason": finish}
    data = {"id": "cmpl-1", "model": "qwen-plus", "choices": [choice], **extra}
    if usage is not None:
        data["usage"] = usage
    return json.dumps(data).encode()  # the stdlib writes ints beyond 64 bits, as a bad server might


GOOD = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}

# usage as sent -> (prompt, completion, total, reasoning, bad_usage)
USAGE_CASES = [
    (GOOD, (10, 5, 15, None, ())),
    ({"prompt_tokens": 10, "completion_tokens": 5}, (10, 5, 15, None, ())),  # total left out: computed
    ({"prompt_tokens": 10.0, "completion_tokens": 5.0, "total_tokens": 15.0}, (10, 5, 15, None, ())),
    ({"prompt_tokens": 7.5, "completion_tokens": 5, "total_tokens": 12}, (None, 5, 12, None, ("prompt_tokens",))),
    ({"prompt_tokens": "abc", "completion_tokens": 5}, (None, 5, None, None, ("prompt_tokens",))),
    ({"prompt_tokens": "10", "completion_tokens": 5}, (None, 5, None, None, ("prompt_tokens",))),
    ({"prompt_tokens": 2 ** 70, "completion_tokens": 5, "total_tokens": 2 ** 70},
     (None, 5, None, None, ("prompt_tokens", "total_tokens"))),
    ({"prompt_tokens": 2 ** 63, "completion_tokens": 2 ** 63 - 1},
     (None, 2 ** 63 - 1, None, None, ("prompt_tokens",))),
    ({"prompt_tokens": True, "completion_tokens": False, "total_tokens": 1},
     (None, None, 1, None, ("prompt_tokens", "completion_tokens"))),
    ({"prompt_tokens": {"n": 1}, "completion_tokens": [5], "total_tokens": 6},
     (None, None, 6, None, ("prompt_tokens", "completion_tokens"))),
    ({"prompt_tokens": -1, "completion_tokens": 5}, (None, 5, None, None, ("prompt_tokens",))),
    ({**GOOD, "total_tokens": "lots"}, (10, 5, None, None, ("total_tokens",))),  # not recomputed: it was sent
    ({**GOOD, "completion_tokens_details": {"reasoning_tokens": 3}}, (10, 5, 15, 3, ())),
    ({**GOOD, "completion_tokens_details": {"reasoning_tokens": "many"}}, (10, 5, 15, None, ("reasoning_tokens",))),
    ({**GOOD, "completion_tokens_details": {"reasoning_tokens": 2.5}}, (10, 5, 15, None, ("reasoning_tokens",))),
    ({**GOOD, "completion_tokens_details": "many"}, (10, 5, 15, None, ("reasoning_tokens",))),
    ({**GOOD, "completion_tokens_details": None}, (10, 5, 15, None, ())),
    ({**GOOD, "completion_tokens_details": {}}, (10, 5, 15, None, ())),
    ("abc", (None, None, None, None, ("usage",))),
    ([1, 2], (None, None, None, None, ("usage",))),
    ({}, (None, None, None, None, ())),
]


@pytest.mark.parametrize("usage, expected", USAGE_CASES, ids=[str(i) for i in range(len(USAGE_CASES))])
def test_usage_is_kept_where_valid_and_never_costs_the_answer(usage, expected):
    r = parse_completion(body(usage), 0.1, "req-1")
    assert r.kind == "ok" and r.response == "fine" and r.finish_reason == "stop"
    assert (r.prompt_tokens, r.completion_tokens, r.total_tokens, r.reasoning_tokens, r.bad_usage) == expected
    for n in (r.prompt_tokens, r.completion_tokens, r.total_tokens, r.reasoning_tokens):
        assert n is None or type(n) is int
    result = Result.from_reply("rid", r, 1)
    assert result.bad_usage == expected[4] and result.prompt_tokens == expected[0]


def test_no_usage_at_all_is_unknown_not_bad():
    r = parse_completion(body(None), 0.1)
    assert r.ok and (r.prompt_tokens, r.total_tokens, r.bad_usage) == (None, None, ())


def test_numbers_orjson_refuses_still_keep_the_answer():
    raw = b'{"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}], ' \
          b'"usage": {"prompt_tokens": 1e400, "completion_tokens": 2}}'
    r = parse_completion(raw, 0.1)
    assert r.ok and r.response == "hi" and r.prompt_tokens is None and r.completion_tokens == 2
    assert r.bad_usage == ("prompt_tokens",)


@pytest.mark.parametrize("value, expected", [
    (0, (0, True)), (5, (5, True)), (None, (None, True)), (5.0, (5, True)), (5.5, (None, False)),
    (-0.0, (0, True)), (math.nan, (None, False)), (math.inf, (None, False)), (True, (None, False)),
    ("5", (None, False)), (2 ** 63, (None, False)), (float(2 ** 63), (None, False)), (-3, (None, False)),
])
def test_count(value, expected):
    assert count(value) == expected


# message -> (kind, response, reasoning_content)
MESSAGE_CASES = [
    ({"content": None}, ("ok", None, None)),  # an empty answer: kept as ok with no response
    ({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}, {"x": 1}]}, ("ok", "ab", None)),
    ({"content": "x", "reasoning_content": "because"}, ("ok", "x", "because")),
    ({"content": "x", "reasoning": "because"}, ("ok", "x", "because")),
    ({"content": "x", "reasoning_content": 5}, ("ok", "x", None)),
    ({"content": 5}, ("decode", None, None)),
    ({"content": {"a": 1}}, ("decode", None, None)),
]


@pytest.mark.parametrize("message, expected", MESSAGE_CASES, ids=[str(i) for i in range(len(MESSAGE_CASES))])
def test_message_shapes(message, expected):
    r = parse_completion(body(GOOD, message=message), 0.1)
    assert (r.kind, r.response, r.reasoning_content) == expected


def test_a_null_content_with_stop_is_an_empty_answer():
    r = parse_completion(body(GOOD, content=None, finish="stop"), 0.1)
    assert r.ok and r.response is None and r.finish_reason == "stop" and r.total_tokens == 15


@pytest.mark.parametrize("finish, expected", [("stop", "stop"), ("eos", "stop"), ("max_tokens", "length"),
                                              ("tool_calls", "tool_calls"), (None, None), (3, None)])
def test_finish_reasons(finish, expected):
    assert parse_completion(body(GOOD, finish=finish), 0.1).finish_reason == expected


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b'{"choices": []}', b'{"choices": null}',
                                 b'{"choices": [5]}', b'{"choices": [{"message": "hi"}]}', b'"str"',
                                 b'{"choices": [{"message": {"content": "x"}}]' + b"]" * 3])
def test_unreadable_bodies_are_decode_errors(raw):
    r = parse_completion(raw, 0.2, "req-9")
    assert (r.kind, r.status, r.code, r.request_id) == ("decode", 200, "bad_response", "req-9")


def test_a_parsed_dict_is_read_the_same():
    assert parse_completion(orjson.loads(body(GOOD)), 0.1) == parse_completion(body(GOOD), 0.1)


def test_request_id_prefers_the_header_then_the_body_id():
    assert parse_completion(body(GOOD), 0.1, "hdr").request_id == "hdr"
    assert parse_completion(body(GOOD), 0.1).request_id == "cmpl-1"
    assert parse_completion(body(GOOD, id=5), 0.1).request_id is None


# (status, body, headers) -> (code, message, retry_after, request_id)
ERROR_CASES = [
    (429, {"error": {"code": "limit_requests", "message": "slow down"}, "request_id": "r1"},
     {"Retry-After": "3"}, ("limit_requests", "slow down", 3.0, "r1")),
    (400, {"code": "InvalidParameter", "message": "bad", "request_id": "r2"}, {}, ("InvalidParameter", "bad", None, "r2")),
    (422, {"detail": "nope"}, {}, (None, "nope", None, None)),
    (422, {"detail": [{"loc": ["body"], "msg": "x"}]}, {}, (None, '[{"loc":["body"],"msg":"x"}]', None, None)),
    (500, "Internal Server Error", {"x-request-id": "r3"}, (None, "Internal Server Error", None, "r3")),
    (502, "", {}, (None, "HTTP 502", None, None)),
    (500, {"error": "boom"}, {}, (None, "boom", None, None)),
    (429, {"error": {"code": 429, "message": ["a"]}}, {}, ("429", "HTTP 429", None, None)),
    (400, {"error": {"code": {"x": 1}, "message": "m"}}, {"x-dashscope-request-id": "r4"}, (None, "m", None, "r4")),
    (503, None, {"retry-after-ms": "1500"}, (None, "HTTP 503", 1.5, None)),
]


@pytest.mark.parametrize("status, payload, headers, expected", ERROR_CASES,
                         ids=[str(i) for i in range(len(ERROR_CASES))])
def test_error_bodies(status, payload, headers, expected):
    raw = payload if payload is None or isinstance(payload, str) else orjson.dumps(payload)
    r = error_reply(status, raw, headers, 0.1)
    assert r.kind == "http" and r.status == status
    assert (r.code, r.message, r.retry_after, r.request_id) == expected
    if isinstance(payload, dict):  # an already parsed body reads the same
        assert error_reply(status, payload, headers, 0.1) == r


def test_a_huge_error_message_is_cut():
    r = error_reply(500, b"x" * 100_000, {}, 0.1)
    assert len(r.message) < 2100
