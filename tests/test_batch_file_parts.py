"""Batch File's pieces on their own: the job log, chunks and their maps, the line judge, the control
plane against the simulator (and a server that breaks a download halfway)."""

from __future__ import annotations

import asyncio
import os
import threading

import orjson
import pytest

from batchframe.batchfile.chunks import OpenChunk, RidIndex, chunk_lines, line_bytes, read_map, write_map
from batchframe.batchfile.control import Control, ControlError, make_client
from batchframe.batchfile.lines import judge, verdict_of
from batchframe.batchfile.record import JobLog, chunk_path
from batchframe.engine.retry import RetryPolicy
from batchframe.engine.taxonomy import Action
from batchframe.pipeline.redact import Redactor
from batchframe.simulator import Simulator

FAST = RetryPolicy(base_s=0.001, throttle_base_s=0.001, cap_s=0.01)


# ---------------------------------------------------------------- the job log


def test_the_log_replays_its_state_skips_a_torn_line_and_removes_leftovers(tmp_path):
    log = JobLog(str(tmp_path)).open(endpoint="http://x/v1")
    for event in ({"e": "chunk", "n": 0, "lines": 2, "bytes": 10, "rows": 3, "reserve": 0.5},
                  {"e": "uploading", "n": 0}, {"e": "file", "n": 0, "id": "file-1"},
                  {"e": "creating", "n": 0}, {"e": "batch", "n": 0, "id": "batch-1", "expires_at": 9},
                  {"e": "keys", "n": 0, "rows": 2},
                  {"e": "chunk", "n": 1, "lines": 1, "bytes": 5, "rows": 1},
                  {"e": "merged", "n": 1, "status": "completed",
                   "resubmit": {"e": "chunk", "n": 2, "lines": 1, "bytes": 5, "rows": 1, "attempt": 2, "parent": 1}}):
        log.append(event)
    for name in ("chunk-000000.jsonl", "chunk-000001.jsonl", "chunk-000002.jsonl", "chunk-000007.jsonl",
                 ".chunk-000000.keys.parquet.1.tmp"):
        open(os.path.join(log.dir, name), "wb").close()
    log.close()
    with open(log.path, "ab") as f:
        f.write(b'{"e": "batch", "n": 2, "id": "torn')  # a crash mid-write
    again = JobLog(str(tmp_path))
    job_id = again.job_id
    assert job_id and again.job["endpoint"] == "http://x/v1"
    c0, c1, c2 = again.chunks[0], again.chunks[1], again.chunks[2]
    assert (c0.file_id, c0.batch_id, c0.rows, c0.uploading, c0.creating) == ("file-1", "batch-1", 5, True, True)
    assert c1.merged == {"status": "completed"} and not c1.live
    assert c2.live and c2.parent == 1 and c2.attempt == 2 and c2.batch_id is None
    assert [c.n for c in again.live()] == [0, 2] and again.next_n() == 3
    again.open()
    assert again.job_id == job_id  # one job event, ever
    assert sorted(os.listdir(again.dir)) == ["chunk-000000.jsonl", "chunk-000002.jsonl", "job.jsonl"]
    again.close()


# ---------------------------------------------------------------- chunks


def test_a_chunk_writes_its_lines_and_map(tmp_path):
    chunk = OpenChunk(str(tmp_path), 3)
    for i in range(3):
        body = {"model": "m", "messages": [{"role": "user", "content": f"p{i}"}]}
        data = line_bytes(f"r{i}", "/v1/chat/completions", body)
        assert chunk.fits(len(data), 3, 10_000, ("m", None))
        chunk.add(f"r{i}", [f"i:{i}"], data, 0.25, ("m", None))
    chunk.keys["r0"].append("i:9")
    assert not chunk.fits(10, 3, 10_000, ("m", None))     # the line limit
    assert not chunk.fits(10, 5, 10, ("m", None))         # the byte limit
    event = chunk.close()
    assert event["lines"] == 3 and event["rows"] == 4 and event["reserve"] == 0.75
    assert [cid for cid, _ in chunk_lines(chunk_path(str(tmp_path), 3))] == ["r0", "r1", "r2"]
    write_map(chunk_path(str(tmp_path), 3, ".keys-x.parquet"), [("r2", ["i:5"])])
    assert read_map(str(tmp_path), 3) == {"r0": ["i:0", "i:9"], "r1": ["i:1"], "r2": ["i:2", "i:5"]}
    line = orjson.loads(open(chunk_path(str(tmp_path), 3), "rb").readline())
    assert line == {"custom_id": "r0", "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": "m", "messages": [{"role": "user", "content": "p0"}]}}


def test_a_chunk_holds_one_model_and_thinking_mode(tmp_path):
    chunk = OpenChunk(str(tmp_path), 0)
    chunk.add("a", ["i:0"], b"{}\n", 0.0, ("qwen3.5-plus", False))
    assert not chunk.fits(3, 10, 1000, ("qwen3.5-plus", True))
    assert not chunk.fits(3, 10, 1000, ("qwen-plus", False))
    chunk.discard()
    assert os.listdir(tmp_path) == []


def test_rid_index_finds_the_chunk_of_each_request():
    index = RidIndex()
    for n in range(40):
        index.add([f"rid-{n}-{i}" for i in range(50)], n)
    assert len(index) == 2000
    got = index.lookup(["rid-7-3", "rid-39-49", "nope", "rid-0-0"]).tolist()
    assert got == [7, 39, -1, 0]


# ---------------------------------------------------------------- judging lines

ANSWER = {"id": "c1", "object": "chat.completion", "model": "qwen-plus",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


def _line(**fields):
    return orjson.dumps({"id": "l1", "custom_id": "r1", **fields})


@pytest.mark.parametrize(("raw", "ok", "action", "code"), [
    (_line(response={"status_code": 200, "request_id": "q", "body": ANSWER}, error=None), True, None, None),
    (_line(response={"status_code": 500, "body": {"error": {"code": "InternalError", "message": "x"}}}),
     False, Action.RETRY, "InternalError"),
    (_line(response={"status_code": 400, "body": {"error": {"code": "data_inspection_failed", "message": "bad"}}},
           error={"code": "data_inspection_failed", "message": "bad"}), False, Action.FAIL_ROW, "data_inspection_failed"),
    (_line(response=None, error={"code": "data_inspection_failed", "message": "bad"}),
     False, Action.FAIL_ROW, "data_inspection_failed"),
    (_line(response=None, error={"error_code": "Throttling.RateQuota", "error_message": "slow down"}),
     False, Action.RETRY, "Throttling.RateQuota"),
    (_line(response=None, error={"code": "batch_expired", "message": "window passed"}), False, Action.RETRY,
     "batch_expired"),
    (_line(response={"status_code": 401, "body": {"code": "InvalidApiKey", "message": "no"}}),
     False, Action.STOP_RUN, "InvalidApiKey"),
    (_line(response={"status_code": 404, "body": {"error": {"code": "model_not_found", "message": "?"}}}),
     False, Action.STOP_RUN, "model_not_found"),
    (_line(response={"status_code": 200, "body": {"choices": []}}), False, Action.RETRY, "bad_response"),
    (_line(response={"status_code": 503, "body": None}), False, Action.RETRY, "http_503"),
])
def test_each_line_is_judged_by_its_own_status(raw, ok, action, code):
    rid, reply = judge(raw)
    assert rid == "r1" and reply.ok == ok
    if ok:
        assert (reply.response, reply.prompt_tokens, reply.request_id) == ("hi", 3, "q")
    else:
        verdict = verdict_of(reply)
        assert verdict.action is action and verdict.code == code


def test_an_unreadable_line_has_no_owner():
    assert judge(b"{not json")[0] is None and judge(b'{"custom_id": 5}')[0] is None


# ---------------------------------------------------------------- the control plane


def control(url: str, timeout: float = 30.0) -> Control:
    return Control(make_client(url, "sk-test", timeout), timeout=timeout, retry=FAST, dashscope=False,
                   redact=Redactor(["sk-test"]))


def _input(tmp_path, n=3):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(line_bytes(f"r{i}", "/v1/chat/completions",
                                         {"model": "qwen-plus", "messages": [{"role": "user", "content": f"p{i}"}]})
                              for i in range(n)))
    return str(path), path.stat().st_size


def test_a_stalled_create_is_found_through_the_list(tmp_path):
    with Simulator(stall_batch_creates=1) as sim:
        c = control(sim.base_url, timeout=1.0)
        path, size = _input(tmp_path)
        file_id = c.upload(path, "batchframe-x-chunk-000000.jsonl", size)
        assert c.find_file("batchframe-x-chunk-000000.jsonl", size) == file_id
        meta = {"ds_name": "batchframe x chunk 0"}
        batch = c.create(file_id=file_id, endpoint="/v1/chat/completions", window="24h", metadata=meta, since=0)
        assert sim.stats()["batches_created"] == 1  # the stalled create made it; it was found, not made again
        assert batch.input_file_id == file_id and c.find_batch(file_id, "batchframe x chunk 0", 0).id == batch.id
        assert c.find_batch(file_id, "batchframe x chunk 1", 0) is None
        c.close()


def test_control_errors_are_fatal_with_the_key_redacted(tmp_path):
    with Simulator(api_key="right") as sim:
        c = control(sim.base_url)
        with pytest.raises(ControlError) as info:
            c.retrieve("batch_x")
        assert info.value.status == 401 and "sk-test" not in str(info.value)
        c.close()


class _BreakingServer:
    """Serves one file; the first download is cut off after half of it."""

    def __init__(self, data: bytes) -> None:
        from aiohttp import web

        self.data, self.calls = data, 0
        app = web.Application()
        app.router.add_get("/v1/files/{id}/content", self.content)
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def content(self, request):
        from aiohttp import web

        self.calls += 1
        response = web.StreamResponse()
        response.content_length = len(self.data)
        await response.prepare(request)
        if self.calls == 1:
            await response.write(self.data[: len(self.data) // 2])
            request.transport.close()
            return response
        await response.write(self.data)
        return response

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


def test_a_broken_download_resumes_where_it_stopped():
    data = b"".join(b'{"custom_id": "r%d"}\n' % i for i in range(2000))
    server = _BreakingServer(data)
    try:
        c = control(f"http://127.0.0.1:{server.port}/v1")
        got = list(c.lines("file-1"))
        c.close()
    finally:
        server.stop()
    assert server.calls == 2
    assert [orjson.loads(x)["custom_id"] for x in got] == [f"r{i}" for i in range(2000)]
