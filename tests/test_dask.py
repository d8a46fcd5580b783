"""batchframe on Dask: a 2-process LocalCluster against the simulator over real sockets.

Workers are other processes: they reach the simulator on 127.0.0.1 (in-process or spawned) like any
client would, and build their own openai clients.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

pytest.importorskip("dask.distributed")
pytestmark = pytest.mark.timeout(120)  # a stuck partition must fail the test, not stall the suite

import dask
import dask.dataframe as dd
from distributed import Client, LocalCluster

import batchframe
import batchframe.dask  # registers ddf.batchchat
from batchframe import ConfigError, RunFatalError
from batchframe.simulator import ErrorRule, Simulator
from conftest import wait_until

MODEL = "qwen-plus"
VOLATILE = ["latency_s", "request_id"]  # differ between any two runs, pandas or not
POISON = "[[poison]]"
FATAL = ErrorRule(POISON, 400, "Arrearage", "Access denied, please make sure your account is in good standing.")


@pytest.fixture(scope="module")
def client():
    # worker-saturation 1.0: a worker holds only the tasks it can run now, the rest wait on the
    # scheduler for the first free worker (the default 1.1 may queue a partition behind a long one)
    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as c:
        yield c


def texts(n: int, start: int = 0) -> list[str]:
    return [f"review number {i}: it works fine" for i in range(start, start + n)]


def test_results_equal_pandas(client):
    df = pd.DataFrame({"text": texts(300), "n": range(300)}, index=pd.RangeIndex(1000, 1300))
    df.loc[1003, "text"] = None                   # a per-row error, no request
    df.loc[1210, "text"] = "please [[moderate]] this"  # a per-row failure from the server
    ddf = dd.from_pandas(df, npartitions=3)
    with Simulator(max_qps=None) as sim:
        out = ddf.batchchat.complete(prompt_col="text", model=MODEL, base_url=sim.base_url, system="One word.")
        assert sim.stats()["requests"] == 0  # lazy: building the graph sends nothing
        got = out.compute()
        ref = batchframe.complete(ddf.compute(), "text", model=MODEL, base_url=sim.base_url,
                                  system="One word.", progress=False)
    assert list(got.columns) == list(ref.columns) == list(out.columns)
    assert got.dtypes.to_dict() == ref.dtypes.to_dict() == out.dtypes.to_dict()
    pd.testing.assert_frame_equal(got.drop(columns=VOLATILE), ref.drop(columns=VOLATILE))
    assert got.loc[1003, "error_code"] == "empty_prompt" and got.loc[1210, "status"] == "failed"
    assert (got["status"] == "ok").sum() == 298


def test_prefix_suffix_meta_and_values(client):
    df = pd.DataFrame({"text": texts(20), "response": "mine"})
    ddf = dd.from_pandas(df, npartitions=2)
    with Simulator() as sim:
        with pytest.raises(ConfigError, match="already exist"):
            ddf.batchchat.complete(prompt_col="text", model=MODEL, base_url=sim.base_url)
        out = ddf.batchchat.complete(prompt_col="text", model=MODEL, base_url=sim.base_url,
                                     prefix="bf_", suffix="_1")
        got = out.compute()
    assert "bf_response_1" in out.columns and "bf_status_1" in out.columns
    assert got.dtypes.to_dict() == out.dtypes.to_dict()
    assert (got["response"] == "mine").all() and (got["bf_status_1"] == "ok").all()


def test_structured_output_columns_match_pandas(client):
    schema = {"type": "object", "properties": {"sentiment": {"type": "string"}, "score": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "review", "schema": schema}}
    ddf = dd.from_pandas(pd.DataFrame({"text": [f"{t} Answer in JSON." for t in texts(30)]}), npartitions=3)
    with Simulator() as sim:
        kw = {"model": MODEL, "base_url": sim.base_url, "response_format": fmt, "parse": True}
        out = ddf.batchchat.complete(prompt_col="text", **kw)
        got = out.compute()
        ref = batchframe.complete(ddf.compute(), "text", progress=False, **kw)
        with pytest.raises(ConfigError, match="json_schema"):
            ddf.batchchat.complete(prompt_col="text", model=MODEL, base_url=sim.base_url,
                                   response_format={"type": "json_object"}, parse=True)
    assert list(out.columns) == list(got.columns) == list(ref.columns)
    assert "sentiment" in got.columns and "parse_error" in got.columns
    assert got.dtypes.to_dict() == ref.dtypes.to_dict() == out.dtypes.to_dict()
    pd.testing.assert_frame_equal(got.drop(columns=VOLATILE), ref.drop(columns=VOLATILE))


def test_simulate_starts_one_simulator_per_partition(client):
    ddf = dd.from_pandas(pd.DataFrame({"text": texts(12)}), npartitions=2)
    got = ddf.batchchat.complete(prompt_col="text", model=MODEL, simulate=True).compute()
    assert (got["status"] == "ok").all() and got["response"].str.contains("simulated").all()


def test_global_limits_hold_across_workers(client):
    """Both limits below the load: 2 worker processes, 4 partitions, 1,600 rows, each partition
    asking for 256 in flight. 8 in flight at 25 ms is 320 rows/s of capacity, so qps=200 binds too."""
    df = pd.DataFrame({"text": texts(1600)})
    ddf = dd.from_pandas(df, npartitions=4)
    with Simulator.spawn(latency_s=0.025, max_qps=None, max_pending=None) as sim:
        out = ddf.batchchat.complete(prompt_col="text", model=MODEL, base_url=sim.base_url,
                                     max_workers=256, max_pending=8, qps=200).compute()
        stats = sim.stats()
    assert (out["status"] == "ok").all() and stats["requests"] == 1600
    assert stats["peak_pending"] <= 8, stats["peak_pending"]
    # No tolerance: each of the 2 running partitions gets qps 100, and its engine keeps rate + burst
    # under that in any 1 s window (with 2 % to spare for network jitter); a partition taking a freed
    # slot waits until its predecessor's burst could not add to its own (see dask._start_delay).
    assert stats["peak_qps"] <= 200, stats["peak_qps"]
    assert stats["peak_qps"] >= 120  # the qps limit was what held it back, not something slower


def test_fatal_in_one_partition_stops_the_job_and_resume_skips_finished_partitions(client, tmp_path):
    """Partitions 0-2 have 40 rows, partition 3 has 280 with a run-fatal answer waiting at its last
    row: whatever order Dask runs them in, 0-2 (5x shorter) have finished when 3 reaches it."""
    rows = texts(400)
    rows[399] = f"{rows[399]} {POISON}"
    df = pd.DataFrame({"text": rows})
    bounds = [(0, 40), (40, 80), (80, 120), (120, 400)]
    ddf = dd.concat([dd.from_pandas(df.iloc[a:b], npartitions=1) for a, b in bounds])
    assert ddf.npartitions == 4
    root = tmp_path / "runs"
    kw = {"prompt_col": "text", "model": MODEL, "checkpoint": str(root), "max_workers": 8}
    with Simulator(error_rules=(FATAL,), latency_s=0.03, max_qps=None) as bad:
        port, base_url = bad.port, bad.base_url
        with pytest.raises(RunFatalError, match=r"partition 3: .*Arrearage"):
            ddf.batchchat.complete(base_url=bad.base_url, **kw).compute()

    done = {}  # partition -> labels answered ok in its checkpoint
    for i in range(4):
        stored = batchframe.load_checkpoint(root / f"part-{i}")
        done[i] = set(stored.index[stored["status"] == "ok"])
    for i, (a, b) in enumerate(bounds[:3]):
        assert done[i] == set(range(a, b)), f"partition {i} did not finish"
    assert 399 not in done[3] and len(done[3]) < 280
    assert len(pd.read_parquet(root)) >= sum(len(v) for v in done.values())  # one raw read of the root

    with Simulator(port=port, max_qps=None) as good:  # same endpoint: same request hashes
        assert good.base_url == base_url
        out = ddf.batchchat.complete(base_url=good.base_url, **kw).compute()
        attempts = good.stats()["attempts_per_prompt"]
    assert (out["status"] == "ok").all() and len(out) == 400 and out.index.equals(df.index)
    sent = {int(p.split(":")[0].split()[-1]) for p in attempts}
    assert not sent & set(range(120)), "a finished partition was sent again"
    assert sent == set(range(120, 400)) - done[3]  # exactly partition 3's rows not yet answered
    assert max(attempts.values()) == 1


def test_killed_worker_resumes_its_partition_from_the_checkpoint(client, tmp_path):
    """kill -9 of a worker mid-job: Dask runs its partition again elsewhere, which resumes from the
    partition's checkpoint: only the calls in flight on the dead worker are sent twice."""
    ddf = dd.from_pandas(pd.DataFrame({"text": texts(480)}), npartitions=4)
    with Simulator(latency_s=0.05, max_qps=None) as sim:
        future = client.compute(ddf.batchchat.complete(prompt_col="text", model=MODEL, base_url=sim.base_url,
                                                       checkpoint=str(tmp_path / "runs"), max_workers=8))
        wait_until(lambda: sim.stats()["successes"] >= 100, timeout=30, poll=0.02)
        victim = next(iter(client.run(os.getpid).values()))
        os.kill(victim, signal.SIGKILL)
        out = future.result(timeout=100)
        stats = sim.stats()
    assert (out["status"] == "ok").all() and len(out) == 480
    assert stats["distinct_successes"] == 480
    assert stats["duplicate_successes"] <= 8, stats["duplicate_successes"]  # max_workers=8 in flight


def test_fatal_stops_partitions_still_running(client):
    """Partition 0 hits a run-fatal answer at once; partition 1, running beside it on the other
    worker with slow answers, stops dispatching when compute() gives up instead of finishing."""
    rows = texts(400)
    rows[0] = f"{rows[0]} {POISON}"
    ddf = dd.from_pandas(pd.DataFrame({"text": rows}), npartitions=2)
    with Simulator(error_rules=(FATAL,), latency_s=0.2, max_qps=None) as sim:
        started = time.monotonic()
        with pytest.raises(RunFatalError, match="partition 0"):
            ddf.batchchat.complete(prompt_col="text", model=MODEL, base_url=sim.base_url,
                                   max_workers=4, concurrent_partitions=2).compute()
        elapsed = time.monotonic() - started
        time.sleep(1.5)
        before = sim.stats()["requests"]
        time.sleep(1.0)
        after = sim.stats()["requests"]
    # partition 1 alone would take 200 rows / 4 in flight x 0.2 s = 10 s
    assert elapsed < 8, elapsed
    assert after == before, "partition 1 kept sending after the job stopped"
    assert before < 150, before


def test_object_store_root_stages_and_publishes(tmp_path):
    """A non-local fsspec root: parts are staged on the worker and published as whole objects."""
    import fsspec

    root = f"memory://bf-test-{time.monotonic_ns()}/runs"
    ddf = dd.from_pandas(pd.DataFrame({"text": texts(40)}), npartitions=2)
    with Simulator() as sim:
        kw = {"prompt_col": "text", "model": MODEL, "base_url": sim.base_url, "checkpoint": root,
              "concurrent_partitions": 1}
        first = ddf.batchchat.complete(**kw).compute(scheduler="sync")
        assert sim.stats()["requests"] == 40
        again = ddf.batchchat.complete(**kw).compute(scheduler="sync")
        assert sim.stats()["requests"] == 40  # nothing re-sent
    pd.testing.assert_frame_equal(first.drop(columns=VOLATILE), again.drop(columns=VOLATILE))
    fs = fsspec.filesystem("memory")
    path = root.removeprefix("memory://")
    files = [p.split("/runs/", 1)[1] for p in fs.find(path)]
    assert "_batchframe_dask.json" in files
    for i in (0, 1):  # each partition: its metadata and finished Parquet parts, nothing temporary
        mine = [f.split("/", 1)[1] for f in files if f.startswith(f"part-{i}/")]
        assert "_batchframe.json" in mine and any(f.endswith(".parquet") for f in mine)
        assert all(f == "_batchframe.json" or (f.startswith("part-") and f.endswith(".parquet")) for f in mine)


def test_bad_input_fails_on_the_client_before_anything_runs():
    ddf = dd.from_pandas(pd.DataFrame({"text": texts(4), "n": range(4)}), npartitions=2)
    url = "http://127.0.0.1:9/v1"  # nothing listens: any request would fail
    with pytest.raises(ConfigError, match="not a column"):
        ddf.batchchat.complete(prompt_col="nope", model=MODEL, base_url=url)
    with pytest.raises(ConfigError, match="non-text"):
        ddf.batchchat.complete(prompt_col="n", model=MODEL, base_url=url)
    with pytest.raises(TypeError, match="temprature"):
        ddf.batchchat.complete(prompt_col="text", model=MODEL, base_url=url, temprature=0)
    with pytest.raises(ConfigError, match="max_cost"):
        ddf.batchchat.complete(prompt_col="text", model=MODEL, base_url=url, max_cost=1.0)
    with pytest.raises(ConfigError, match="API key"):
        ddf.batchchat.complete(prompt_col="text", model=MODEL,
                               base_url="https://batch.dashscope.aliyuncs.com/compatible-mode/v1")
    with pytest.raises(ConfigError, match="local"):
        ddf.batchchat.complete(prompt_col="text", local=True)
    with pytest.raises(ConfigError, match="at most one"):
        ddf.batchchat.complete(prompt_col="text", model=MODEL, base_url=url, simulate=True)
    with pytest.raises(ConfigError, match="dask DataFrame"):
        batchframe.dask.complete(ddf.compute(), "text", model=MODEL, base_url=url)


def test_checkpoint_root_holding_other_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    ddf = dd.from_pandas(pd.DataFrame({"text": texts(4)}), npartitions=2)
    with pytest.raises(batchframe.CheckpointError, match="not a batchframe Dask checkpoint root"):
        ddf.batchchat.complete(prompt_col="text", model=MODEL, base_url="http://127.0.0.1:9/v1",
                               checkpoint=tmp_path)


def test_api_key_is_never_shown():
    ddf = dd.from_pandas(pd.DataFrame({"text": texts(4)}), npartitions=2)
    secret = "sk-" + "a1b2c3d4e5f6g7h8"
    out = ddf.batchchat.complete(prompt_col="text", model=MODEL, base_url="http://127.0.0.1:9/v1", api_key=secret)
    graph = out.__dask_graph__()
    assert secret not in repr(dict(graph))
    assert secret not in repr(out)


def test_import_batchframe_does_not_import_dask():
    code = ("import sys, batchframe, pandas as pd\n"
            "pd.DataFrame({'a': ['x']}).batchchat\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed'))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_accessor_registered_by_import():
    ddf = dd.from_pandas(pd.DataFrame({"text": texts(2)}), npartitions=1)
    assert callable(ddf.batchchat.complete)
    assert dask.is_dask_collection(ddf.batchchat.complete(prompt_col="text", model=MODEL,
                                                          base_url="http://127.0.0.1:9/v1"))


def test_a_staged_partition_uploads_what_changed_and_deletes_no_remote_name(tmp_path):
    """A remote root: parts created or changed in place (a stub) are uploaded, the metadata and the
    superseded manifest last; a name merged away locally stays remote (a reader may have listed it)."""
    import fsspec

    from batchframe.dask import store

    fs = fsspec.filesystem("memory")
    remote = "/bf-test-root/part-0"
    for name in ("part-a.parquet", "part-b.parquet", "_batchframe.json"):
        fs.pipe_file(f"{remote}/{name}", b"old " + name.encode())
    local = tmp_path / "stage"
    local.mkdir()
    before = store._download(fs, remote, str(local))
    assert set(before) == {"part-a.parquet", "part-b.parquet", "_batchframe.json"}
    (local / "part-c.parquet").write_bytes(b"merged")            # compaction's new part
    (local / "part-b.parquet").write_bytes(b"an empty stub now")  # changed in place
    (local / "_superseded.json").write_bytes(b"{}")
    uploaded = []
    real = fs.put_file
    fs.put_file = lambda src, dst, **kw: (uploaded.append(os.path.basename(dst)), real(src, dst, **kw))
    try:
        store._publish(fs, remote, str(local), before)
    finally:
        fs.put_file = real
    assert uploaded[-1] == "_superseded.json" and set(uploaded) == {"part-b.parquet", "part-c.parquet",
                                                                      "_superseded.json"}
    assert fs.cat_file(f"{remote}/part-a.parquet") == b"old part-a.parquet"  # unchanged: not re-sent, kept
    assert fs.cat_file(f"{remote}/part-b.parquet") == b"an empty stub now"
