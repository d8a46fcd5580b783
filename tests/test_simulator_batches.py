"""The simulator's Batch File API (files and batches), driven by the real openai SDK over real HTTP."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from batchframe.simulator import ErrorRule, SimConfig, Simulator

from conftest import wait_until

CHAT = "/v1/chat/completions"
DONE = ("completed", "failed", "expired", "cancelled")


def line(i: int, text: str | None = None, *, model: str = "qwen-plus", url: str = CHAT,
         custom_id: str | None = None, **params: Any) -> dict[str, Any]:
    content = text if text is not None else f"review {i}: I love it, great."
    return {"custom_id": custom_id if custom_id is not None else f"row-{i}", "method": "POST", "url": url,
            "body": {"model": model, "messages": [{"role": "user", "content": content}], **params}}


def jsonl(lines: list[Any]) -> bytes:
    return b"".join((json.dumps(x) if not isinstance(x, str) else x).encode() + b"\n" for x in lines)


def upload(client: openai.OpenAI, lines: list[Any]) -> str:
    return client.files.create(file=("input.jsonl", io.BytesIO(jsonl(lines))), purpose="batch").id


def submit(client: openai.OpenAI, lines: list[Any], *, endpoint: str = CHAT, **params: Any) -> Any:
    return client.batches.create(input_file_id=upload(client, lines), endpoint=endpoint,
                                 completion_window="24h", **params)


def wait_for(client: openai.OpenAI, batch_id: str, statuses: tuple[str, ...] = DONE) -> Any:
    wait_until(lambda: client.batches.retrieve(batch_id).status in statuses)
    batch = client.batches.retrieve(batch_id)
    assert batch.status in statuses, batch
    return batch


def read(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    return [] if file_id is None else [json.loads(x) for x in client.files.content(file_id).text.splitlines()]


def run(client: openai.OpenAI, lines: list[Any], **params: Any) -> tuple[Any, list[dict], list[dict]]:
    """Submit, wait for the end: (batch, output lines, error lines)."""
    batch = wait_for(client, submit(client, lines, **params).id)
    return batch, read(client, batch.output_file_id), read(client, batch.error_file_id)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(seed=5) as simulator:
        yield simulator


def sdk(sim: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url, api_key="sk-test", max_retries=0)


# ---------------------------------------------------------------- the whole round trip


def test_upload_create_poll_download_delete(sim: Simulator) -> None:
    client = sdk(sim)
    lines = [line(i) for i in range(40)]
    uploaded = client.files.create(file=("in.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    assert uploaded.id.startswith("file-batch-") and uploaded.purpose == "batch"
    assert uploaded.bytes == len(jsonl(lines)) and uploaded.status == "processed"
    assert client.files.retrieve(uploaded.id).filename == "in.jsonl"
    assert client.files.content(uploaded.id).content == jsonl(lines)
    created = client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h",
                                    metadata={"ds_name": "run-7 chunk-0"})
    assert created.status == "validating" and created.object == "batch"
    assert created.expires_at == created.created_at + 24 * 3600
    assert created.metadata == {"ds_name": "run-7 chunk-0"}
    batch = wait_for(client, created.id)
    assert batch.status == "completed" and batch.error_file_id is None and batch.errors is None
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at
    counts = batch.request_counts
    assert (counts.total, counts.completed, counts.failed) == (40, 40, 0)
    output = read(client, batch.output_file_id)
    ids = [x["custom_id"] for x in output]
    assert sorted(ids) == sorted(x["custom_id"] for x in lines) and ids != [x["custom_id"] for x in lines]
    first = output[0]
    assert first["id"].startswith("batch_req_") and first["error"] is None
    assert first["response"]["status_code"] == 200 and first["response"]["request_id"]
    answer = first["response"]["body"]
    assert answer["object"] == "chat.completion" and answer["choices"][0]["message"]["content"].startswith(
        "The sentiment is positive")
    assert client.files.retrieve(batch.output_file_id).purpose == "batch_output"
    listed = [f.id for f in client.files.list()]
    assert listed == [batch.output_file_id, uploaded.id]  # newest first
    stats = sim.stats()
    assert stats["batches_created"] == 1 and stats["batches"] == {"completed": 1}
    assert stats["lines"] == stats["lines_billed"] == stats["billed"] == 40 and stats["requests"] == 0
    assert set(stats["billed_per_prompt"].values()) == {1} and stats["duplicate_successes"] == 0
    assert (stats["files_uploaded"], stats["files_stored"]) == (1, 2)
    for file_id in (uploaded.id, batch.output_file_id):
        assert client.files.delete(file_id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(uploaded.id)
    assert sim.stats()["files_stored"] == 0 and sim.stats()["files_deleted"] == 2


def test_async_sdk_and_the_order_is_deterministic() -> None:
    async def output_order() -> list[str]:
        with Simulator(seed=9) as sim:
            client = openai.AsyncOpenAI(base_url=sim.base_url, api_key="x", max_retries=0)
            uploaded = await client.files.create(file=("in.jsonl", jsonl([line(i) for i in range(30)])),
                                                 purpose="batch")
            batch = await client.batches.create(input_file_id=uploaded.id, endpoint=CHAT,
                                                completion_window="72h")
            while batch.status not in DONE:
                await asyncio.sleep(0.01)  # polling, as a client does; nothing is timed
                batch = await client.batches.retrieve(batch.id)
            content = await client.files.content(batch.output_file_id)
            await client.close()
            return [json.loads(x)["custom_id"] for x in content.text.splitlines()]

    assert asyncio.run(output_order()) == asyncio.run(output_order())


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(("lines", "config", "code", "line_no"), [
    ([line(i) for i in range(4)], {"batch_max_lines": 3}, "too_many_tasks", None),
    ([line(i) for i in range(4)], {"batch_max_bytes": 300}, "file_too_large", None),
    ([line(0), line(1, model="qwen-flash")], {}, "mismatched_model", 2),
    ([line(0), line(1, custom_id="row-0")], {}, "duplicate_custom_id", 2),
    ([line(0), line(1, url="/v1/embeddings")], {}, "invalid_url", 2),
    ([line(0), "{not json", line(2)], {}, "invalid_json_line", 2),
    ([line(0), {"custom_id": "x", "method": "POST", "url": CHAT}], {}, "missing_required_parameter", 2),
    ([line(0, model="gpt-9")], {}, "model_not_found", 1),
    ([line(0, stream=True)], {}, "streaming_unsupported", 1),
    ([line(0, model="qwen3.5-plus"), line(1, model="qwen3.5-plus", enable_thinking=False)], {},
     "mismatched_thinking_mode", 2),
    ([], {}, "empty_file", None),
])
def test_validation_failures(lines: list[Any], config: dict[str, Any], code: str, line_no: int | None) -> None:
    with Simulator(**config) as sim:
        client = sdk(sim)
        batch = wait_for(client, submit(client, lines).id)
        assert batch.status == "failed" and batch.failed_at and batch.in_progress_at is None
        assert batch.errors.data[0].code == code and batch.errors.data[0].line == line_no
        assert batch.output_file_id is None and batch.request_counts.total == 0
        assert sim.stats()["lines"] == 0 and sim.stats()["batches"] == {"failed": 1}


def test_unknown_input_file_fails_the_batch(sim: Simulator) -> None:
    client = sdk(sim)
    batch = wait_for(client, client.batches.create(input_file_id="file-batch-nope", endpoint=CHAT,
                                                   completion_window="24h").id)
    assert batch.status == "failed" and batch.errors.data[0].code == "invalid_request"
    assert batch.errors.data[0].param == "input_file_id"


@pytest.mark.parametrize(("params", "param"), [
    ({"endpoint": "/v1/embeddings"}, "endpoint"),
    ({"completion_window": "1h"}, "completion_window"), ({"completion_window": "15d"}, "completion_window"),
    ({"completion_window": "soon"}, "completion_window"),
    ({"metadata": {"tags": ["a"]}}, "metadata.tags"),
    ({"metadata": {"ds_name": "x" * 101}}, "metadata.ds_name"),
])
def test_create_refusals(sim: Simulator, params: dict[str, Any], param: str) -> None:
    client = sdk(sim)
    arguments = {"input_file_id": upload(client, [line(0)]), "endpoint": CHAT, "completion_window": "24h",
                 **params}
    with pytest.raises(openai.BadRequestError) as caught:
        client.batches.create(**arguments)
    assert caught.value.param == param
    assert sim.stats()["batches_created"] == 0
    assert client.batches.create(**{**arguments, "endpoint": CHAT, "completion_window": "14d",
                                    "metadata": None}).completion_window == "14d"


def test_uploads_need_purpose_batch(sim: Simulator) -> None:
    client = sdk(sim)
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("x.jsonl", io.BytesIO(b"{}\n")), purpose="fine-tune")
    assert caught.value.param == "purpose" and sim.stats()["files_stored"] == 0


# ---------------------------------------------------------------- lines answered as chat calls are


def test_line_faults_are_drawn_per_attempt_and_resubmission_heals(sim: Simulator) -> None:
    with Simulator(seed=5, error_500_rate=0.3) as sim, Simulator(seed=5, error_500_rate=0.3) as twin:
        client = sdk(sim)
        lines = [line(i) for i in range(60)] + [line(60, "bad [[moderate]]")]
        batch, output, errors = run(client, lines)
        counts = batch.request_counts
        assert counts.completed == len(output) and counts.failed == len(errors) and counts.total == 61
        failed = {x["custom_id"]: x for x in errors}
        assert failed["row-60"]["response"]["status_code"] == 400
        assert failed["row-60"]["error"]["code"] == "data_inspection_failed"
        assert {x["response"]["body"]["error"]["code"] for k, x in failed.items() if k != "row-60"} == {
            "InternalError"}
        assert 5 < len(failed) < 35
        assert {x["custom_id"] for x in run(sdk(twin), lines)[2]} == set(failed)  # same seed, same faults
        retry = [x for x in lines if x["custom_id"] in failed and x["custom_id"] != "row-60"]
        for _ in range(10):  # each resubmission is the next attempt of every body: new draws
            _, healed, still = run(client, retry)
            done = {x["custom_id"] for x in healed}
            retry = [x for x in retry if x["custom_id"] not in done]
            if not retry:
                break
        assert not retry
        stats = sim.stats()
        assert stats["lines_billed"] == stats["billed"] == 60 and stats["duplicate_successes"] == 0
        assert set(stats["billed_per_prompt"].values()) == {1}
        assert stats["lines_by_code"]["data_inspection_failed"] == 1


@pytest.mark.parametrize(("style", "response", "error"), [("both", True, True), ("response", True, False),
                                                          ("error", False, True)])
def test_error_line_styles(style: str, response: bool, error: bool) -> None:
    with Simulator(batch_error_line_style=style) as sim:
        (failed,) = run(sdk(sim), [line(0, "x [[moderate]]")])[2]
        assert (failed["response"] is not None, failed["error"] is not None) == (response, error)
        if response:
            assert failed["response"]["status_code"] == 400
            assert failed["response"]["body"]["error"]["code"] == "data_inspection_failed"
        if error:
            assert failed["error"] == {"code": "data_inspection_failed",
                                       "message": "Input data may contain inappropriate content."}


def test_failed_lines_in_the_output_file() -> None:
    with Simulator(batch_failed_in_output_rate=1.0, error_503_rate=1.0) as sim:
        batch, output, errors = run(sdk(sim), [line(i) for i in range(5)])
        assert errors == [] and batch.error_file_id is None
        assert {x["response"]["status_code"] for x in output} == {503}
        assert (batch.request_counts.completed, batch.request_counts.failed) == (5, 0)  # as probes saw
        assert sim.stats()["billed"] == 0


def test_lost_lines_are_in_neither_file() -> None:
    with Simulator(drop_rate=1.0) as sim:
        batch, output, errors = run(sdk(sim), [line(i) for i in range(4)])
        assert batch.status == "completed" and output == errors == []
        assert batch.output_file_id is None and batch.request_counts.completed == 0
        assert sim.stats()["lines_by_status"] == {0: 4}


def test_outputs_and_echoes_in_lines() -> None:
    rule = ErrorRule("leak", 400, "InvalidParameter", "Bad.", echo_authorization=True)
    with Simulator(error_rules=(rule,)) as sim:
        client = openai.OpenAI(base_url=sim.base_url, api_key="sk-secret-9", max_retries=0)
        _, output, errors = run(client, [line(0, n=3, logprobs=True), line(1, "leak it")])
        assert len(output[0]["response"]["body"]["choices"]) == 3
        assert output[0]["response"]["body"]["choices"][0]["logprobs"]["content"]
        assert "Bearer sk-secret-9" in errors[0]["error"]["message"]


def test_the_free_test_model() -> None:
    with Simulator(batch_test_max_lines=3) as sim:
        client = sdk(sim)
        test = [line(i, model="batch-test-model", url="/v1/chat/ds-test") for i in range(3)]
        batch, output, _ = run(client, test, endpoint="/v1/chat/ds-test")
        assert batch.status == "completed"
        assert {x["response"]["body"]["choices"][0]["message"]["content"] for x in output} == {
            "This is a test result."}
        assert sim.stats()["billed"] == 0 and sim.stats()["lines"] == 3
        batch, output, errors = run(client, [line(i, model="batch-test-model") for i in range(2)])
        assert batch.status == "completed" and output == []
        assert {x["error"]["code"] for x in errors} == {"mismatched_test_url"}
        too_many = test + [line(3, model="batch-test-model", url="/v1/chat/ds-test")]
        assert run(client, too_many, endpoint="/v1/chat/ds-test")[0].errors.data[0].code == "too_many_tasks"


# ---------------------------------------------------------------- hold, expiry, cancel


def test_hold_then_release(sim: Simulator) -> None:
    client = sdk(sim)
    sim.hold_batches(after_lines=3)
    batch = wait_for(client, submit(client, [line(i) for i in range(10)]).id, ("in_progress",))
    wait_until(lambda: client.batches.retrieve(batch.id).request_counts.completed == 3)
    held = client.batches.retrieve(batch.id)
    assert held.status == "in_progress" and held.request_counts.completed == 3 and held.output_file_id is None
    assert sim.stats()["lines"] == 3  # honest counts while running
    sim.release_batches()
    assert wait_for(client, batch.id).request_counts.completed == 10


@pytest.mark.parametrize("unfinished", ["error", "missing"])
def test_expiry_after_k_lines(unfinished: str) -> None:
    with Simulator(batch_expire_after_lines=4, batch_unfinished=unfinished) as sim:
        client = sdk(sim)
        batch, output, errors = run(client, [line(i) for i in range(10)])
        assert batch.status == "expired" and batch.expired_at and batch.completed_at is None
        assert len(output) == 4 and sim.stats()["billed"] == 4
        if unfinished == "error":
            assert len(errors) == 6 and batch.request_counts.failed == 6
            assert {x["custom_id"] for x in output} | {x["custom_id"] for x in errors} == {
                f"row-{i}" for i in range(10)}
            assert errors[0]["response"] is None and errors[0]["error"]["code"] == "batch_expired"
            assert sim.stats()["lines_by_code"] == {"batch_expired": 6}
        else:
            assert errors == [] and batch.error_file_id is None and batch.request_counts.failed == 0


def test_expire_now_while_held(sim: Simulator) -> None:
    client = sdk(sim)
    sim.hold_batches(after_lines=2)
    batch = submit(client, [line(i) for i in range(6)])
    wait_until(lambda: client.batches.retrieve(batch.id).request_counts.completed == 2)
    sim.expire_batches()
    batch = wait_for(client, batch.id)
    assert batch.status == "expired" and len(read(client, batch.output_file_id)) == 2
    assert len(read(client, batch.error_file_id)) == 4


def test_cancel_keeps_and_bills_what_finished(sim: Simulator) -> None:
    client = sdk(sim)
    sim.hold_batches(after_lines=2)
    batch = submit(client, [line(i) for i in range(6)])
    wait_until(lambda: client.batches.retrieve(batch.id).request_counts.completed == 2)
    assert client.batches.cancel(batch.id).status in ("cancelling", "cancelled")
    batch = wait_for(client, batch.id)
    assert batch.status == "cancelled" and batch.cancelling_at and batch.cancelled_at
    assert len(read(client, batch.output_file_id)) == 2 and sim.stats()["billed"] == 2
    assert {x["error"]["code"] for x in read(client, batch.error_file_id)} == {"batch_cancelled"}
    assert client.batches.cancel(batch.id).status == "cancelled"  # cancelling a cancelled batch is allowed
    sim.release_batches()
    done = wait_for(client, submit(client, [line(0)]).id)
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(done.id)
    with pytest.raises(openai.NotFoundError):
        client.batches.cancel("batch_nope")


def test_cancel_while_validating() -> None:
    with Simulator(batch_validating_s=3600) as sim:
        client = sdk(sim)
        batch = submit(client, [line(0)])
        assert client.batches.retrieve(batch.id).status == "validating"
        client.batches.cancel(batch.id)
        batch = wait_for(client, batch.id)
        assert batch.status == "cancelled" and batch.output_file_id is None and sim.stats()["lines"] == 0


def test_deleting_the_input_of_a_running_batch(sim: Simulator) -> None:
    client = sdk(sim)
    sim.hold_batches()
    batch = wait_for(client, submit(client, [line(i) for i in range(3)]).id, ("in_progress",))
    client.files.delete(batch.input_file_id)
    sim.release_batches()
    assert len(read(client, wait_for(client, batch.id).output_file_id)) == 3


# ---------------------------------------------------------------- finding batches, the marker file


def test_list_pagination_and_dashscope_filters(sim: Simulator) -> None:
    client = sdk(sim)
    sim.hold_batches()
    created = [submit(client, [line(i)], metadata={"ds_name": f"batchframe run-a chunk-{i}"}) for i in range(5)]
    other = submit(client, [line(9)], metadata={"ds_name": "someone else"})
    ids = [b.id for b in client.batches.list(limit=2)]  # the SDK follows `after` page by page
    assert ids == [other.id] + [b.id for b in reversed(created)]
    found = client.batches.list(extra_query={"ds_name": "RUN-A"}).data
    assert [b.id for b in found] == [b.id for b in reversed(created)]
    file_ids = f"{created[1].input_file_id},{other.input_file_id}"
    by_file = client.batches.list(extra_query={"input_file_ids": file_ids})
    assert {b.id for b in by_file.data} == {created[1].id, other.id}
    client.batches.cancel(created[0].id)
    wait_for(client, created[0].id)
    assert [b.id for b in client.batches.list(extra_query={"status": "cancelled"}).data] == [created[0].id]
    assert len(client.batches.list(extra_query={"create_after": "20000101000000"}).data) == 6
    assert client.batches.list(extra_query={"create_before": "20000101000000"}).data == []
    with pytest.raises(openai.BadRequestError):
        client.batches.list(extra_query={"status": "sleeping"})


def test_marker_file_names_each_batch_created(tmp_path: Path) -> None:
    marker = tmp_path / "created.txt"
    with Simulator(on_batch_created_marker=str(marker)) as sim:
        client = sdk(sim)
        first, second = submit(client, [line(0)]), submit(client, [line(1)])
        assert marker.read_text().splitlines() == [first.id, second.id]


def test_a_stalled_create_makes_its_batch_but_never_answers(tmp_path: Path) -> None:
    marker = tmp_path / "created.txt"
    with Simulator(on_batch_created_marker=str(marker), stall_batch_creates=1) as sim:
        client = openai.OpenAI(base_url=sim.base_url, api_key="x", max_retries=0, timeout=1.0)
        input_id = upload(client, [line(0)])
        with pytest.raises(openai.APITimeoutError):
            client.batches.create(input_file_id=input_id, endpoint=CHAT, completion_window="24h",
                                  metadata={"ds_name": "lost-id"})
        (lost,) = marker.read_text().splitlines()
        (found,) = client.batches.list(extra_query={"ds_name": "lost-id"}).data  # how a client heals
        assert found.id == lost and wait_for(client, lost).status == "completed"
        assert client.batches.create(input_file_id=input_id, endpoint=CHAT, completion_window="24h").id != lost


def test_spawned_simulator_serves_batches_and_controls(tmp_path: Path) -> None:
    marker = tmp_path / "created.txt"
    config = SimConfig(seed=2, on_batch_created_marker=str(marker), batch_hold_lines=1, error_500_rate=0.2)
    with Simulator.spawn(config) as sim:
        client = sdk(sim)
        batch = submit(client, [line(i) for i in range(8)])
        wait_until(lambda: marker.exists() and marker.read_text().strip() == batch.id)
        wait_until(lambda: client.batches.retrieve(batch.id).request_counts.completed
                   + client.batches.retrieve(batch.id).request_counts.failed == 1)
        assert client.batches.retrieve(batch.id).status == "in_progress"
        sim.release_batches()
        batch = wait_for(client, batch.id)
        stats = sim.stats()
        assert stats["batches"] == {"completed": 1} and stats["lines"] == 8
        assert set(stats["lines_by_status"]) <= {200, 500}
        with httpx2.Client(trust_env=False) as http:
            hold = sim.base_url.removesuffix("/v1") + "/_sim/batches/hold?after_lines=x"
            assert http.post(hold).status_code == 400


# ---------------------------------------------------------------- timings (never waited out: cut short)


def test_slow_lines_show_honest_counts_and_a_cancel_cuts_the_wait() -> None:
    with Simulator(batch_line_s=3600) as sim:  # one line, then an hour before the next
        client = sdk(sim)
        batch = submit(client, [line(i) for i in range(3)])
        wait_until(lambda: client.batches.retrieve(batch.id).request_counts.completed == 1)
        assert client.batches.retrieve(batch.id).status == "in_progress"
        client.batches.cancel(batch.id)
        batch = wait_for(client, batch.id)
        assert batch.status == "cancelled" and len(read(client, batch.output_file_id)) == 1


def test_finalizing_shows_full_counts_before_the_files() -> None:
    with Simulator(batch_finalizing_s=3600) as sim:
        client = sdk(sim)
        batch = wait_for(client, submit(client, [line(i) for i in range(4)]).id, ("finalizing",))
        assert batch.request_counts.completed == 4 and batch.output_file_id is None and batch.finalizing_at
        client.batches.cancel(batch.id)
        batch = wait_for(client, batch.id)
        assert batch.status == "cancelled" and len(read(client, batch.output_file_id)) == 4


_CLIENT = """
import io, sys, time, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="x", max_retries=0)
line = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "qwen-plus", ' \\
       b'"messages": [{"role": "user", "content": "Great."}]}}\\n'
uploaded = client.files.create(file=("in.jsonl", io.BytesIO(line)), purpose="batch")
client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
                      metadata={"ds_name": "killed-run"})
time.sleep(600)  # would record the id here; killed first
"""


@pytest.mark.slow
def test_kill_the_client_right_after_the_first_batch_is_created(tmp_path: Path) -> None:
    """How a crash test uses the marker: wait for the file, kill -9 the client, look for the batch."""
    import signal
    import subprocess
    import sys

    marker = tmp_path / "created.txt"
    with Simulator(on_batch_created_marker=str(marker), batch_hold_lines=0) as sim:
        proc = subprocess.Popen([sys.executable, "-c", _CLIENT, sim.base_url])
        try:
            wait_until(lambda: marker.exists() and marker.read_text().endswith("\n"), timeout=60)
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            proc.kill()
            proc.wait()
        (created,) = marker.read_text().splitlines()
        (found,) = sdk(sim).batches.list(extra_query={"ds_name": "killed-run"}).data
        assert found.id == created
        assert wait_for(sdk(sim), created, ("in_progress",)).request_counts.completed == 0  # held
        assert sim.stats()["batches_created"] == 1
