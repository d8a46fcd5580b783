"""The Batch Chat simulator, exercised over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx2
import openai
import orjson
import pytest

from batchframe.simulator import ErrorRule, SimConfig, Simulator, main
from batchframe.simulator._cli import build_parser, config_from_args
from batchframe.simulator._draw import Draw, body_key
from batchframe.simulator._responder import default_responder

from conftest import wait_until

REVIEW = "I love this blender, it is great."


def body(text: str = REVIEW, model: str = "qwen-plus", **params: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **params}


@pytest.fixture
def http() -> Iterator[httpx2.Client]:
    with httpx2.Client(trust_env=False, timeout=30) as client:
        yield client


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(seed=7) as simulator:
        yield simulator


def post(http: httpx2.Client, sim: Any, payload: dict[str, Any], **kwargs: Any) -> httpx2.Response:
    return http.post(f"{sim.base_url}/chat/completions", json=payload, **kwargs)


def error_of(response: httpx2.Response) -> dict[str, Any]:
    data = response.json()
    assert data["request_id"] == response.headers["x-request-id"]
    return data["error"]


# ---------------------------------------------------------------- answers


def test_answer_has_openai_shape_and_usage(sim: Simulator, http: httpx2.Client) -> None:
    client = openai.OpenAI(base_url=sim.base_url, api_key="x", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="qwen-plus", messages=[{"role": "system", "content": "Answer with one word."},
                                     {"role": "user", "content": REVIEW}])
    assert raw.headers["x-request-id"]
    answer = raw.parse()
    assert answer.id.startswith("chatcmpl-")
    assert answer.object == "chat.completion" and answer.model == "qwen-plus"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content == "positive"
    assert answer.choices[0].finish_reason == "stop"
    usage = answer.usage
    assert usage.prompt_tokens > 8 and usage.completion_tokens >= 1
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens_details is None  # no thinking for qwen-plus by default
    models = http.get(f"{sim.base_url}/models").json()
    assert "qwen3.5-plus" in [m["id"] for m in models["data"]]


@pytest.mark.parametrize(("payload", "expected"), [
    (body("Terrible, the worst purchase ever."), "The sentiment is negative"),
    (body("It is not good.") | {"messages": [{"role": "system", "content": "Reply in one word."},
                                             {"role": "user", "content": "It is not good."}]}, "negative"),
    (body("The box is blue. Answer with a single word."), "neutral"),
    (body("Great!", response_format={"type": "json_object"}), {"sentiment": "positive", "confidence": 0.72}),
    (body("Awful.", response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": {
        "type": "object", "properties": {
            "label": {"enum": ["Positive", "Negative"]}, "stars": {"type": "integer"},
            "is_positive": {"type": "boolean"}}}}}),
     {"label": "Negative", "stars": 1, "is_positive": False}),
])
def test_default_responder(payload: dict[str, Any], expected: Any) -> None:
    answer = default_responder(payload)
    if isinstance(expected, dict):
        assert orjson.loads(answer) == expected
    else:
        assert answer.startswith(expected)


def test_custom_responder() -> None:
    with Simulator(responder=lambda b: f"echo: {b['messages'][-1]['content']}") as sim, \
            httpx2.Client(trust_env=False) as http:
        assert post(http, sim, body("hi")).json()["choices"][0]["message"]["content"] == "echo: hi"


def test_thinking_default_and_enable_thinking(sim: Simulator, http: httpx2.Client) -> None:
    def message_and_usage(payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        data = post(http, sim, payload).json()
        return data["choices"][0]["message"], data["usage"]

    message, usage = message_and_usage(body(model="qwen3.5-plus"))  # thinks by default
    assert message["reasoning_content"] and message["content"]
    reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
    assert 2 * (usage["completion_tokens"] - reasoning) <= reasoning < usage["completion_tokens"]
    message, usage = message_and_usage(body(model="qwen3.5-plus", enable_thinking=False))
    assert "reasoning_content" not in message and "completion_tokens_details" not in usage
    message, usage = message_and_usage(body(model="qwen-plus", enable_thinking=True))  # hybrid model
    assert message["reasoning_content"] and usage["completion_tokens_details"]["reasoning_tokens"] > 0
    assert sim.stats()["reasoning_tokens"] > 0


def test_max_tokens_cuts_the_answer(sim: Simulator, http: httpx2.Client) -> None:
    data = post(http, sim, body(max_tokens=3)).json()
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 3
    # thinking eats the whole budget: empty content, "length" (the silent-wrong-answer trap)
    data = post(http, sim, body(model="qwen3.5-flash", max_tokens=5)).json()
    assert data["choices"][0]["message"]["content"] == ""
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens_details"]["reasoning_tokens"] == 5


# ---------------------------------------------------------------- deterministic errors


def test_moderation_every_time(sim: Simulator, http: httpx2.Client) -> None:
    for _ in range(3):
        response = post(http, sim, body("bad stuff [[moderate]]"))
        assert response.status_code == 400
        assert error_of(response) == {"code": "data_inspection_failed", "param": None, "type":
                                      "data_inspection_failed",
                                      "message": "Input data may contain inappropriate content."}


def test_error_rules(http: httpx2.Client) -> None:
    rules = (ErrorRule("secret", 403, "AccessDenied", "Access denied."),
             ErrorRule("", 400, "Arrearage", "Access denied, please make sure your account is in good "
                       "standing.", "Arrearage"))
    with Simulator(error_rules=rules) as sim:
        assert error_of(post(http, sim, body("a secret"))) == {
            "code": "AccessDenied", "message": "Access denied.", "type": "invalid_request_error",
            "param": None}
        response = post(http, sim, body("anything"))
        assert response.status_code == 400 and error_of(response)["code"] == "Arrearage"
        assert sim.stats()["by_code"] == {"AccessDenied": 1, "Arrearage": 1}


def test_error_rule_echoes_the_authorization_header(http: httpx2.Client) -> None:
    """A careless server echoing the key: the simulator can play one, for the no-leak tests."""
    rules = (ErrorRule("echo", 400, "InvalidParameter", "Bad request.", echo_authorization=True),
             ErrorRule("both", 401, "InvalidApiKey", "Invalid key.", echo_authorization=True,
                       echo_authorization_in_request_id=True))
    with Simulator(error_rules=rules) as sim:
        auth = {"Authorization": "Bearer sk-secret-123"}
        response = post(http, sim, body("echo this"), headers=auth)
        assert error_of(response)["message"] == "Bad request. (Authorization: Bearer sk-secret-123)"
        assert "sk-secret" not in response.headers["x-request-id"]
        response = post(http, sim, body("both"), headers=auth)
        assert response.status_code == 401 and "sk-secret-123" in error_of(response)["message"]
        assert response.headers["x-request-id"] == "Bearer sk-secret-123"
        client = openai.OpenAI(base_url=sim.base_url, api_key="sk-via-sdk", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            client.chat.completions.create(**body("both"))
        assert "sk-via-sdk" in str(caught.value) and caught.value.request_id == "Bearer sk-via-sdk"
        assert post(http, sim, body("plain")).status_code == 200


def test_api_key(http: httpx2.Client) -> None:
    with Simulator(api_key="sk-right") as sim:
        client = openai.OpenAI(base_url=sim.base_url, api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(**body())
        response = post(http, sim, body())
        assert response.status_code == 401
        assert error_of(response) == {"code": "invalid_api_key", "message": "Incorrect API key provided. ",
                                      "type": "invalid_request_error", "param": None}
        assert http.get(f"{sim.base_url}/models").status_code == 401
        assert post(http, sim, body(), headers={"Authorization": "Bearer sk-right"}).status_code == 200
        assert "sk-right" not in repr(sim.config)


def test_unknown_model(sim: Simulator, http: httpx2.Client) -> None:
    response = post(http, sim, body(model="gpt-9"))
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "model_not_found"
    assert error["message"] == "The model `gpt-9` does not exist or you do not have access to it."


@pytest.mark.parametrize(("payload", "message"), [
    (body("x" * 400), "Range of input length should be [1, 50]"),
    (body(model="qwen3.5-plus", response_format={"type": "json_object"}), "response_format"),
    (body(max_tokens=0), "max_tokens"),
    (body(enable_thinking="yes"), "enable_thinking"),
    ({"model": "qwen-plus", "messages": []}, "messages"),
])
def test_invalid_parameter(http: httpx2.Client, payload: dict[str, Any], message: str) -> None:
    with Simulator(max_input_tokens=50) as sim:
        response = post(http, sim, payload)
        assert response.status_code == 400
        error = error_of(response)
        assert error["code"] == "InvalidParameter" and message in error["message"]


# ---------------------------------------------------------------- random faults, determinism


@pytest.mark.parametrize(("field", "status", "code"), [
    ("throttle_rate", 429, "Throttling.RateQuota"),
    ("error_500_rate", 500, "InternalError"),
    ("error_503_rate", 503, "ModelServingError"),
])
def test_error_faults(http: httpx2.Client, field: str, status: int, code: str) -> None:
    with Simulator(retry_after_s=2, **{field: 1.0}) as sim:
        response = post(http, sim, body())
        assert response.status_code == status and error_of(response)["code"] == code
        assert response.headers.get("Retry-After") == ("2" if status == 429 else None)
        assert sim.stats()["billed"] == 0


def test_drop_closes_the_connection(http: httpx2.Client) -> None:
    with Simulator(drop_rate=1.0) as sim:
        client = openai.OpenAI(base_url=sim.base_url, api_key="x", max_retries=0)
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(**body())
        with pytest.raises(httpx2.RemoteProtocolError):
            post(http, sim, body())
        assert sim.stats()["by_status"] == {0: 2}


def test_bad_body_is_unparseable(http: httpx2.Client) -> None:
    with Simulator(bad_body_rate=1.0) as sim:
        response = post(http, sim, body())
        assert response.status_code == 200
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(response.content)
        assert sim.stats()["by_code"] == {"bad_body": 1} and sim.stats()["billed"] == 0


def test_server_timeout_closes_the_connection(http: httpx2.Client) -> None:
    with Simulator(server_timeout_s=0.05, timeout_rate=1.0) as sim, \
            pytest.raises(httpx2.RemoteProtocolError):
        post(http, sim, body())
    with Simulator(server_timeout_s=0.05, latency_s=10.0) as sim:  # the wait is longer than the timeout
        with pytest.raises(httpx2.RemoteProtocolError):
            post(http, sim, body())
        assert sim.stats()["by_code"] == {"server_timeout": 1}


def test_hang_and_client_timeout_frees_the_slot(http: httpx2.Client) -> None:
    with Simulator(hang_rate=1.0, hang_s=60.0) as sim:
        with pytest.raises(httpx2.ReadTimeout):
            post(http, sim, body(), timeout=0.2)
        wait_until(lambda: not sim.stats()["pending"])
        assert sim.stats()["pending"] == 0 and sim.stats()["by_status"] == {499: 1}


def outcomes(seed: int, payloads: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """(status, request id) of each payload, sent in order to a fresh simulator."""
    config = SimConfig(seed=seed, throttle_rate=0.3, error_500_rate=0.2, latency="exponential",
                       latency_s=0.001)
    with Simulator(config) as sim, httpx2.Client(trust_env=False) as http:
        return [(r.status_code, r.headers["x-request-id"]) for r in (post(http, sim, p) for p in payloads)]


def test_determinism_whatever_the_order() -> None:
    a, b = body("first review"), body("second review")
    forward = outcomes(1, [a, a, a, a, b, b, b, b])
    backward = outcomes(1, [b, b, b, b, a, a, a, a])
    assert forward == backward[4:] + backward[:4]  # same body + attempt -> same draw
    assert len({rid for _, rid in forward}) == 8  # every attempt gets a fresh draw
    assert {status for status, _ in forward} == {200, 429, 500}
    assert outcomes(2, [a, a, a, a, b, b, b, b]) != forward


def test_draws() -> None:
    config = SimConfig(latency="lognormal", latency_s=2.0, latency_max_s=5.0)
    key = body_key(body())
    assert body_key({"b": 1, "a": 2}) == body_key({"a": 2, "b": 1})
    assert Draw(0, key, 0).latency(config) == Draw(0, key, 0).latency(config)
    waits = [Draw(0, key, attempt).latency(config) for attempt in range(200)]
    assert len(set(waits)) > 100 and min(waits) > 0 and max(waits) == 5.0
    assert Draw(0, key, 0).latency(SimConfig()) == 0.0


# ---------------------------------------------------------------- limits


def test_max_pending_cap() -> None:
    with Simulator(latency_s=0.5, max_pending=5) as sim, httpx2.Client(
            trust_env=False, limits=httpx2.Limits(max_connections=20)) as http:
        statuses: list[int] = []
        barrier = threading.Barrier(20)

        def call(i: int) -> None:
            barrier.wait()
            response = post(http, sim, body(f"review {i}"))
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert error_of(response) == {
                    "code": "limit_requests", "type": "requests", "param": None,
                    "message": "Too many pending requests for this model, please retry later."}

        threads = [threading.Thread(target=call, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        counts = Counter(statuses)
        assert set(counts) == {200, 429} and sum(counts.values()) == 20
        stats = sim.stats()
        assert stats["peak_pending"] <= 5 and stats["peak_pending_per_model"] == {"qwen-plus": 5}
        assert stats["pending"] == 0


def test_max_qps_cap(http: httpx2.Client) -> None:
    with Simulator(max_qps=5) as sim:
        responses = [post(http, sim, body(f"review {i}")) for i in range(12)]
        rejected = [r for r in responses if r.status_code == 429]
        assert rejected and error_of(rejected[0]) == {
            "code": "limit_requests", "type": "requests", "param": None,
            "message": "Requests rate limit exceeded, please try again later."}
        assert sim.stats()["peak_qps"] == 5


def test_burst_limit(http: httpx2.Client) -> None:
    with Simulator(burst_limit=2, max_qps=None) as sim:
        codes = {error_of(r)["code"] for r in (post(http, sim, body(f"r{i}")) for i in range(10))
                 if r.status_code == 429}
        assert codes == {"limit_burst_rate"}


# ---------------------------------------------------------------- stats, processes, scale


def test_stats_counters(sim: Simulator, http: httpx2.Client) -> None:
    for payload in (body("a"), body("a"), body("a"), body("b"), body("c [[moderate]]")):
        post(http, sim, payload)
    stats = sim.stats()
    assert stats["requests"] == 5 and stats["by_status"] == {200: 4, 400: 1}
    assert stats["billed"] == stats["successes"] == 4
    assert stats["distinct_bodies"] == 3 and stats["distinct_successes"] == 2
    assert stats["duplicate_successes"] == 2
    assert stats["attempts_per_prompt"] == {"a": 3, "b": 1, "c [[moderate]]": 1}
    assert stats["prompt_tokens"] > 0 and stats["completion_tokens"] > 0
    assert http.get(sim.base_url.removesuffix("/v1") + "/_sim/stats").json()["billed"] == 4
    http.post(sim.base_url.removesuffix("/v1") + "/_sim/reset")
    assert sim.stats()["requests"] == 0 and sim.stats()["attempts_per_prompt"] == {}


@pytest.mark.slow
def test_spawned_simulator_holds_2000_concurrent_connections() -> None:
    """2,000 requests held at once by a simulator in another process, all answered."""
    count = 2000

    async def send_all(url: str) -> list[int]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            async def send(i: int) -> int:
                async with session.post(f"{url}/chat/completions", json=body(f"review {i}")) as response:
                    await response.read()
                    return response.status

            return list(await asyncio.gather(*(send(i) for i in range(count))))

    with Simulator.spawn(SimConfig(latency_s=3.0, max_qps=None)) as sim:
        assert sim.running
        statuses = asyncio.run(send_all(sim.base_url))
        stats = sim.stats()
        sim.reset_stats()
        assert sim.stats()["requests"] == 0
    assert not sim.running
    assert statuses == [200] * count
    assert stats["billed"] == count and stats["by_status"] == {200: count}
    assert stats["peak_pending"] == count


# ---------------------------------------------------------------- config and command line


@pytest.mark.parametrize("bad", [
    {"seed": 1.5}, {"latency": "normal"}, {"latency_s": -1}, {"server_timeout_s": 0},
    {"throttle_rate": 1.5}, {"drop_rate": 0.6, "error_500_rate": 0.6}, {"max_pending": 0},
    {"max_qps": 0}, {"burst_limit": 2.5}, {"models": []}, {"thinking_models": {"qwen-plus": "yes"}},
    {"error_rules": ("x",)}, {"moderation_marker": ""}, {"responder": "text"}, {"api_key": ""},
    {"latency_s": float("nan")}, {"retry_after_s": -1}, {"max_input_tokens": 0},
    {"max_n": 0}, {"sample_flip_rate": 1.5}, {"bad_json_marker": ""}, {"no_tool_marker": 3},
    {"batch_max_lines": 0}, {"batch_max_bytes": 1.5}, {"batch_line_s": -1}, {"batch_hold_lines": -1},
    {"batch_expire_after_lines": "3"}, {"batch_unfinished": "drop"}, {"batch_error_line_style": "x"},
    {"batch_failed_in_output_rate": 2}, {"on_batch_created_marker": ""}, {"stall_batch_creates": -1},
])
def test_config_validation(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SimConfig(**bad)


def test_config_is_frozen_and_keyword_only() -> None:
    config = SimConfig(models=["qwen-plus"])
    assert config.models == ("qwen-plus",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        SimConfig(1)  # type: ignore[misc]
    with pytest.raises(ValueError):
        ErrorRule("", 200, "x", "y")
    with pytest.raises(ValueError):
        ErrorRule("", 400, "x", "y", echo_authorization="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Simulator(not_a_field=1)


def test_config_pickles_with_every_new_knob(tmp_path: Any) -> None:
    """Simulator.spawn sends the config pickled: every knob must survive the trip."""
    import pickle

    config = SimConfig(max_n=8, sample_flip_rate=0.5, bad_json_marker="<bad>", batch_max_lines=10,
                       batch_line_s=0.01, batch_hold_lines=2, batch_expire_after_lines=5,
                       batch_unfinished="missing", batch_failed_in_output_rate=0.5,
                       batch_error_line_style="error", on_batch_created_marker=str(tmp_path / "m"),
                       stall_batch_creates=1,
                       error_rules=(ErrorRule("x", 400, "c", "m", echo_authorization=True),))
    assert pickle.loads(pickle.dumps(config)) == config


def test_cli_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIM_KEY", "sk-test")
    args = build_parser().parse_args(["--seed", "3", "--latency", "uniform", "--latency-s", "0.5",
                                      "--max-pending", "none", "--drop-rate", "0.1",
                                      "--api-key-env", "SIM_KEY", "--models", "qwen-plus,qwen-flash"])
    config = config_from_args(args)
    assert (config.seed, config.latency, config.latency_s, config.max_pending, config.drop_rate) == \
        (3, "uniform", 0.5, None, 0.1)
    assert config.api_key == "sk-test" and config.models == ("qwen-plus", "qwen-flash")
    with pytest.raises(SystemExit):
        main(["--api-key-env", "NO_SUCH_VARIABLE_FOR_SURE"])
    defaults = config_from_args(build_parser().parse_args([]))
    assert dataclasses.replace(defaults, api_key=None) == SimConfig()  # the CLI's defaults are SimConfig's


def test_cli_batch_and_output_knobs() -> None:
    args = build_parser().parse_args([
        "--max-n", "6", "--sample-flip-rate", "0.1", "--batch-max-lines", "10", "--batch-max-bytes", "5000",
        "--batch-test-max-lines", "3", "--batch-validating-s", "0.5", "--batch-line-s", "0.01",
        "--batch-finalizing-s", "1", "--batch-hold-lines", "2", "--batch-expire-after-lines", "none",
        "--batch-unfinished", "missing", "--batch-failed-in-output-rate", "0.2",
        "--batch-error-line-style", "error", "--on-batch-created-marker", "/tmp/m", "--stall-batch-creates", "1"])
    config = config_from_args(args)
    assert (config.max_n, config.sample_flip_rate, config.batch_max_lines, config.batch_max_bytes,
            config.batch_test_max_lines) == (6, 0.1, 10, 5000, 3)
    assert (config.batch_validating_s, config.batch_line_s, config.batch_finalizing_s) == (0.5, 0.01, 1.0)
    assert (config.batch_hold_lines, config.batch_expire_after_lines, config.batch_unfinished) == (2, None, "missing")
    assert (config.batch_failed_in_output_rate, config.batch_error_line_style) == (0.2, "error")
    assert (config.on_batch_created_marker, config.stall_batch_creates) == ("/tmp/m", 1)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--batch-unfinished", "drop"])


def test_cli_serves_until_signalled() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "batchframe.simulator", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("batchframe simulator (fake answers, no real model) listening on "
                               "http://127.0.0.1:")
        url = line.split()[-1]
        with httpx2.Client(trust_env=False) as http:
            assert http.post(f"{url}/chat/completions", json=body()).status_code == 200
        proc.send_signal(signal.SIGTERM)  # (SIGINT may be ignored when the tests run in the background)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()
