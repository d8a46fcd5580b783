"""The checkpoint store: durability, recovery, locking, compaction, bad directories, schema, labels."""

from __future__ import annotations

import collections

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import warnings

import pandas as pd
import pyarrow.parquet as pq
import pytest

from batchframe.checkpoint import files as F
from batchframe.checkpoint.store import (
    FORMAT_VERSION,
    MAX_PARTS,
    CheckpointStore,
    checkpoint_summary,
    load_checkpoint,
)
from batchframe.checkpoint.read import read_rows
from batchframe.rows.keys import key_of
from batchframe.records import RESULT_COLUMNS, Result
from batchframe import CheckpointError, CheckpointLocked

StoredRow = collections.namedtuple("StoredRow", "rid status error_code error", defaults=[None])


def stored(store) -> dict:
    """The current stored outcome per key, as ``load_checkpoint`` reads it (the public reader)."""
    df = load_checkpoint(store.path)
    none = lambda v: None if pd.isna(v) else v  # noqa: E731
    return {k: StoredRow(r, s, none(c), none(e))
            for k, r, s, c, e in zip(df["key"], df["rid"], df["status"], df["error_code"], df["error"])}


def ok(rid: str, text: str = "yes", **kw) -> Result:
    return Result(rid=rid, status="ok", response=text, finish_reason="stop", prompt_tokens=10,
                  completion_tokens=2, total_tokens=12, attempts=1, latency_s=0.5, **kw)


def failed(rid: str, code: str = "DataInspectionFailed") -> Result:
    return Result(rid=rid, status="failed", error="moderation: input rejected", error_code=code, attempts=1)


def parts(path) -> list[str]:
    return sorted(n for n in os.listdir(path) if n.startswith("part-") and n.endswith(".parquet"))


def journals(path) -> list[str]:
    return sorted(n for n in os.listdir(path) if n.startswith("_journal-"))


# ---- write / reopen / supersede -----------------------------------------------------------------

def test_write_close_reopen_done(tmp_path):
    path = tmp_path / "ck"
    with CheckpointStore(path, part_rows=3) as store:
        for i in range(7):
            store.write([f"i:{i}"], ok(f"r{i}", f"answer {i}"), cost=0.001)
        store.write(["s:a", "s:b"], failed("rx"))  # one request shared by two rows
    with CheckpointStore(path) as store:
        done = stored(store)
    assert set(done) == {f"i:{i}" for i in range(7)} | {"s:a", "s:b"}
    assert done["i:3"] == StoredRow("r3", "ok", None)
    assert done["s:b"] == StoredRow("rx", "failed", "DataInspectionFailed", "moderation: input rejected")
    assert done["s:a"].rid == "rx" and "i:99" not in done
    assert {k for k, row in done.items() if row.status != "ok"} == {"s:a", "s:b"}
    assert done["i:5"] == StoredRow("r5", "ok", None)
    df = load_checkpoint(path)
    assert df.loc[4, "response"] == "answer 4" and df.loc[4, "cost"] == 0.001
    assert df.loc["a", "error_code"] == "DataInspectionFailed" and pd.isna(df.loc["a", "response"])


def test_later_write_supersedes_within_and_across_runs(tmp_path):
    path = tmp_path / "ck"
    with CheckpointStore(path) as store:
        store.write(["i:1"], failed("old"))
        store.write(["i:1"], ok("new1"))  # same run, same journal
        store.write(["i:2"], ok("a"))
        assert stored(store)["i:1"].rid == "new1"
    with CheckpointStore(path) as store:
        store.write(["i:2"], ok("b"))  # a later run
        store.flush()
        raw = pd.read_parquet(path)  # raw read: superseded attempts may show (documented)
        assert sorted(raw.loc[raw["key"] == "i:2", "rid"]) == ["a", "b"]
        assert stored(store)["i:2"].rid == "b"
    df = load_checkpoint(path)
    assert df["key"].is_unique and len(df) == 2
    assert df.loc[1, "rid"] == "new1" and df.loc[1, "status"] == "ok" and df.loc[2, "rid"] == "b"


def test_write_validates_its_arguments(tmp_path):
    with CheckpointStore(tmp_path / "ck") as store:
        with pytest.raises(TypeError):
            store.write("i:1", ok("r"))
        with pytest.raises(TypeError):
            store.write([1], ok("r"))
        with pytest.raises(ValueError):
            store.write(["i:1"], Result(rid="r", status="pending"))
        assert len(stored(store)) == 0
    with pytest.raises(CheckpointError):
        store.write(["i:1"], ok("r"))
    store.close()  # idempotent


def test_automatic_parts_by_rows_and_by_seconds(tmp_path):
    path = tmp_path / "ck"
    store = CheckpointStore(path, part_rows=4).open()
    assert len(parts(path)) == 1  # an empty part: the raw read has the columns from the start
    for i in range(10):
        store.write([f"i:{i}"], ok(f"r{i}"))
    assert len(parts(path)) == 3 and len(journals(path)) == 1  # 8 rows in parts, 2 in the journal
    store.close()
    now = [100.0]
    store = CheckpointStore(tmp_path / "ck2", part_seconds=30, clock=lambda: now[0]).open()
    store.write(["i:1"], ok("r1"))
    now[0] += 29.9
    store.write(["i:2"], ok("r2"))
    assert len(parts(tmp_path / "ck2")) == 1 and len(journals(tmp_path / "ck2")) == 1
    now[0] += 0.1
    store.write(["i:3"], ok("r3"))  # 30 s after the first pending row
    assert len(parts(tmp_path / "ck2")) == 2 and journals(tmp_path / "ck2") == []
    store.close()


def test_too_many_small_parts_are_compacted_while_running(tmp_path):
    path = tmp_path / "ck"
    now = [0.0]
    with CheckpointStore(path, part_rows=1000, part_seconds=1.0, clock=lambda: now[0]) as store:
        n = 2 * MAX_PARTS + 6
        for i in range(n):
            now[0] += 2.0  # past part_seconds: small time-based parts
            store.write([f"i:{i % 50}"], ok(f"r{i}"))
            assert len(parts(path)) <= MAX_PARTS + 1
        assert len(parts(path)) < 10
        done = stored(store)
    last = {i % 50: i for i in range(n)}
    assert len(done) == 50 and done["i:10"].rid == f"r{last[10]}" and done["i:49"].rid == f"r{last[49]}"


def test_full_parts_are_never_rewritten_automatically(tmp_path):
    """Memory stays bounded by part_rows: closing a big checkpoint does not read it all back."""
    path = tmp_path / "ck"
    with CheckpointStore(path, part_rows=4) as store:
        for i in range(4 * (MAX_PARTS + 2)):
            store.write([f"i:{i}"], ok(f"r{i}"))
    assert len(parts(path)) >= MAX_PARTS + 2
    assert len(load_checkpoint(path)) == 4 * (MAX_PARTS + 2)


# ---- raw reads at any instant -------------------------------------------------------------------

def test_raw_read_parquet_closed_and_with_an_open_unflushed_store(tmp_path):
    path = tmp_path / "ck"
    with CheckpointStore(path) as store:
        store.write(["i:0"], ok("r0"))
    with CheckpointStore(path, part_rows=1000) as store:
        store.write(["i:1", "i:2"], ok("r12"))  # only in the journal so far
        raw = pd.read_parquet(path)
        assert list(raw["key"]) == ["i:0"]
        assert list(raw.columns[:4]) == ["key", "rid", "seq", "written_at"]
        assert str(raw["prompt_tokens"].dtype) == "Int64" and str(raw["latency_s"].dtype) == "Float64"
        loaded = load_checkpoint(path)  # no lock needed, journal rows included
        assert list(loaded["key"]) == ["i:0", "i:1", "i:2"]
        assert set(stored(store)) == {"i:0", "i:1", "i:2"}
    assert sorted(pd.read_parquet(path)["key"]) == ["i:0", "i:1", "i:2"]


# ---- kill -9 ------------------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys
    from batchframe.checkpoint.store import CheckpointStore
    from batchframe.records import Result
    store = CheckpointStore(sys.argv[1], part_rows=int(sys.argv[2])).open()
    i = 0
    while True:
        store.write(["i:%d" % i], Result(rid="r%d" % i, status="ok", response="answer %d" % i, attempts=1))
        print(i, flush=True)
        i += 1
""")


def test_kill_9_loses_no_written_row(tmp_path):
    path = str(tmp_path / "ck")
    with CheckpointStore(path) as store:  # an earlier run's rows, to be kept too
        store.write(["s:before"], ok("rb"))
    child = subprocess.Popen([sys.executable, "-c", CHILD, path, "7"], stdout=subprocess.PIPE, text=True)
    printed = []
    try:
        for line in child.stdout:
            printed.append(int(line))
            if len(printed) >= 300:
                break
        child.send_signal(signal.SIGKILL)
        child.wait()
        printed += [int(x) for x in child.stdout.read().split()]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL and len(printed) >= 300
    raw = pd.read_parquet(path)  # right after the kill, before any recovery
    assert "s:before" in set(raw["key"]) and len(raw) >= len(printed) - 7  # parts every 7 rows
    loaded = load_checkpoint(path)  # read-only, the crashed journal included
    expected = {f"i:{i}" for i in printed} | {"s:before"}
    assert expected <= set(loaded["key"])
    assert loaded.set_index("key").loc[f"i:{printed[-1]}", "response"] == f"answer {printed[-1]}"
    with CheckpointStore(path) as store:  # the lock died with the child; recovery turns journals to parts
        done = stored(store)
        assert journals(path) == []
        assert expected <= set(done)
        assert all(done[f"i:{i}"].rid == f"r{i}" for i in printed)
    assert expected <= set(pd.read_parquet(path)["key"])


def test_torn_journal_line_is_skipped(tmp_path, caplog):
    path, crashed = tmp_path / "ck", tmp_path / "crashed"
    store = CheckpointStore(path, part_rows=1000).open()
    for i in range(3):
        store.write([f"i:{i}"], ok(f"r{i}"))
    shutil.copytree(path, crashed)  # the directory as a crash at this instant leaves it
    store.close()
    (journal,) = journals(crashed)
    data = (crashed / journal).read_bytes()
    (crashed / journal).write_bytes(data[:-9])  # the last line torn mid-write
    assert set(load_checkpoint(crashed)["key"]) == {"i:0", "i:1"}
    with CheckpointStore(crashed) as store:
        assert set(stored(store)) == {"i:0", "i:1"}
        store.write(["i:2"], ok("r2"))  # the torn row is simply re-run
    assert journals(crashed) == []
    assert set(load_checkpoint(crashed)["key"]) == {"i:0", "i:1", "i:2"}
    assert "unreadable line" in caplog.text


def test_recovery_merges_a_journal_with_its_already_published_part(tmp_path):
    """Ctrl-C inside a flush, or a crash before the journal's deletion, leaves part <x> and journal <x>
    side by side; either may hold rows the other lacks (later writes, a torn journal line)."""
    path, a, b, c = (tmp_path / n for n in ("ck", "a", "b", "c"))
    store = CheckpointStore(path, part_rows=1000).open()
    store.write(["i:0"], ok("r0"))
    store.write(["i:1"], ok("r1"))
    shutil.copytree(path, a)  # journal <x>: rows 0, 1
    store.write(["i:2"], ok("r2"))
    shutil.copytree(path, b)  # journal <x>: rows 0, 1, 2
    shutil.copytree(path, c)
    store.close(compact=False)  # part <x>: rows 0, 1, 2
    part = F.part_of_journal(journals(b)[0])
    CheckpointStore(a).open().close(compact=False)  # part <x>: rows 0, 1
    shutil.copy(a / part, b / part)  # b: part <x> (rows 0, 1) beside journal <x> (rows 0, 1, 2)
    shutil.copy(path / part, c / part)  # c: part <x> (rows 0-2) beside journal <x> torn after row 0
    (journal,) = journals(c)
    data = (c / journal).read_bytes()
    (c / journal).write_bytes(data[: data.index(b"\n") + 20])
    for crashed in (b, c):
        store = CheckpointStore(crashed).open()
        assert set(stored(store)) == {"i:0", "i:1", "i:2"} and journals(crashed) == []
        assert sorted(pq.read_table(crashed / part)["key"].to_pylist()) == ["i:0", "i:1", "i:2"]
        store.close()


# ---- lock ---------------------------------------------------------------------------------------

def test_lock_same_process(tmp_path):
    path = tmp_path / "ck"
    first = CheckpointStore(path).open()
    with pytest.raises(CheckpointLocked) as err:
        CheckpointStore(path).open()
    assert str(path) in str(err.value) and f"pid {os.getpid()}" in str(err.value)
    first.close()
    with CheckpointStore(path).open() as store:  # both spellings work
        with pytest.raises(CheckpointError, match="already open"):
            store.open()
    CheckpointStore(path).open().close()


LOCK_HOLDER = textwrap.dedent("""
    import sys
    from batchframe.checkpoint.store import CheckpointStore
    store = CheckpointStore(sys.argv[1]).open()
    print("ready", flush=True)
    sys.stdin.read()  # hold the lock until killed
""")


def test_lock_held_by_another_process_and_released_by_kill_9(tmp_path):
    path = str(tmp_path / "ck")
    child = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, path], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(CheckpointLocked) as err:
            CheckpointStore(path).open()
        assert path in str(err.value) and f"pid {child.pid}" in str(err.value)
    finally:
        child.kill()
        child.wait()
        child.stdin.close()
        child.stdout.close()
    CheckpointStore(path).open().close()


# ---- bad directories ----------------------------------------------------------------------------

def test_path_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(CheckpointError, match="is a file"):
        CheckpointStore(tmp_path / "f").open()


def test_foreign_directory_is_refused_and_untouched(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    with pytest.raises(CheckpointError, match="not a batchframe checkpoint"):
        CheckpointStore(tmp_path).open()
    assert os.listdir(tmp_path) == ["data.csv"]
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path)


def test_other_format_version(tmp_path):
    path = tmp_path / "ck"
    path.mkdir()
    (path / "_batchframe.json").write_text(json.dumps({"format_version": 99, "library_version": "9.0"}))
    with pytest.raises(CheckpointError) as err:
        CheckpointStore(path).open()
    msg = str(err.value)
    assert "format 99" in msg and "9.0" in msg and "new directory" in msg and "delete" in msg
    with pytest.raises(CheckpointError, match="format 99"):
        CheckpointStore(path).open()
    with pytest.raises(CheckpointError, match="format 99"):
        load_checkpoint(path)


def _two_parts(path):
    """Two parts: the first holds i:1 and i:2, the second i:3."""
    with CheckpointStore(path) as store:
        store.write(["i:1", "i:2"], ok("a"))
        store.flush()
        store.compact()  # one part (the empty first part merged away)
    with CheckpointStore(path) as store:
        store.write(["i:3"], ok("b"))
        store.close(compact=False)
    return sorted(parts(path), key=lambda p: pq.read_table(path / p)["key"].to_pylist() != ["i:1", "i:2"])


def test_truncated_part_is_quarantined_with_a_warning(tmp_path):
    path = tmp_path / "ck"
    first, second = _two_parts(path)
    data = (path / first).read_bytes()
    (path / first).write_bytes(data[: len(data) // 2])
    with pytest.warns(RuntimeWarning, match="re-run"):
        store = CheckpointStore(path).open()
    assert parts(path) == [second] and (path / f".corrupt-{first}").exists()
    assert set(stored(store)) == {"i:3"}  # its rows are simply not done
    store.close()
    assert set(pd.read_parquet(path)["key"]) == {"i:3"}


def test_part_corrupt_inside_is_caught_by_checksums(tmp_path):
    path = tmp_path / "ck"
    first, second = _two_parts(path)
    data = bytearray((path / first).read_bytes())
    for i in range(8, 40):  # inside the first data pages; the footer stays valid
        data[i] ^= 0xFF
    (path / first).write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="unreadable"):
        assert set(load_checkpoint(path)["key"]) == {"i:3"}  # read-only: skipped, not moved
    assert (path / first).exists()
    store = CheckpointStore(path).open()  # the writer's reads (a run's resume) move it aside
    with pytest.warns(RuntimeWarning, match="re-run"):
        assert set(read_rows(store.path, ["rid"], on_corrupt=store.quarantine)["key"].to_pylist()) == {"i:3"}
    assert parts(path) == [second] and (path / f".corrupt-{first}").exists()
    store.close()


# ---- compaction ---------------------------------------------------------------------------------

def test_compaction_leaves_one_part_and_the_same_rows(tmp_path):
    path = tmp_path / "ck"
    store = CheckpointStore(path, part_rows=5).open()
    for i in range(23):
        store.write([f"i:{i % 17}"], ok(f"r{i}"))  # some keys written twice
    store.flush()
    assert len(parts(path)) == 6  # the empty first part and 5 parts of 5, 5, 5, 5, 3 rows
    before = load_checkpoint(path)
    store.compact()
    store.close()
    assert len(parts(path)) == 1 and journals(path) == []
    after = load_checkpoint(path)
    pd.testing.assert_frame_equal(before, after)
    assert len(after) == 17 and after.loc[3, "rid"] == "r20"
    assert list(pq.read_table(path / parts(path)[0])["key"].to_pylist()) == sorted(after["key"])


def test_crash_between_compaction_publish_and_delete_resolves_by_seq(tmp_path):
    path, crashed = tmp_path / "ck", tmp_path / "crashed"
    with CheckpointStore(path) as store:
        store.write(["i:1", "i:2"], ok("old"))
        store.flush()
        store.compact()  # one part holding the old rows
    with CheckpointStore(path) as store:
        store.write(["i:1"], ok("new"))
        store.flush()
        shutil.copytree(path, crashed)  # the parts before compaction
        store.compact()
    old_parts = parts(crashed)
    (compacted,) = parts(path)
    shutil.copy(path / compacted, crashed / compacted)  # published, old parts not yet deleted
    # name the part holding the superseded row so that it sorts last: seq decides, not file order
    os.rename(crashed / old_parts[0], crashed / "part-zzzz-000000.parquet")
    assert len(parts(crashed)) == 3
    assert len(pd.read_parquet(crashed)) == 5  # raw: duplicates, as documented
    expected = load_checkpoint(path)
    pd.testing.assert_frame_equal(load_checkpoint(crashed), expected)
    with CheckpointStore(crashed) as store:
        assert stored(store)["i:1"].rid == "new" and stored(store)["i:2"].rid == "old"
        store.compact()
    assert len(parts(crashed)) == 1
    pd.testing.assert_frame_equal(load_checkpoint(crashed), expected)


# ---- schema, labels, metadata -------------------------------------------------------------------

def test_fixed_schema_with_all_null_columns(tmp_path):
    path = tmp_path / "ck"
    with CheckpointStore(path) as store:
        store.write(["i:1"], failed("x"))  # no response, no tokens, no cost
        store.close(compact=False)
    with CheckpointStore(path) as store:
        store.write(["i:2"], ok("y", reasoning_content="hmm", reasoning_tokens=3, request_id="q"), cost=0.5)
        store.close(compact=False)
    schemas = [pq.read_schema(path / p) for p in parts(path)]
    assert len(schemas) == 3 and all(s.equals(F.schema(), check_metadata=False) for s in schemas)
    assert schemas[0].names == ["key", "rid", "seq", "written_at", *RESULT_COLUMNS]
    assert str(schemas[0].field("written_at").type) == "timestamp[us, tz=UTC]"
    df = load_checkpoint(path)
    assert list(df.columns) == ["key", "label", "rid", *RESULT_COLUMNS, "written_at"]
    for name, dtype in RESULT_COLUMNS.items():
        assert df[name].dtype == pd.api.types.pandas_dtype(dtype), name
    assert df["label"].dtype == object and str(df["written_at"].dtype) == "datetime64[us, UTC]"
    assert pd.isna(df.loc[1, "cost"]) and df.loc[2, "cost"] == 0.5


@pytest.mark.parametrize("labels", [
    [3, 1, 20],
    ["b", "a", "1"],
    [("x", 1), ("y", 2), ("x", 2)],
    [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02 03:04:05")],
    [pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-05-01 10:00", tz="Europe/Berlin")],
    [1, "1", 2.5],
])
def test_key_labels_round_trip(tmp_path, labels):
    path = tmp_path / "ck"
    with CheckpointStore(path) as store:
        for n, label in enumerate(labels):
            store.write([key_of(label)], ok(f"r{n}"))
    df = load_checkpoint(path)
    assert set(df.index) == set(labels) and set(df["label"]) == set(labels)
    for n, label in enumerate(labels):
        assert df["rid"][df["key"] == key_of(label)].item() == f"r{n}"
        assert df.loc[[label], "rid"].item() == f"r{n}"
    if all(isinstance(x, tuple) for x in labels):
        assert isinstance(df.index, pd.MultiIndex)
    if all(isinstance(x, int) for x in labels):
        assert df.index.dtype == "int64" and list(df.index) == sorted(labels)


def test_metadata_written_and_kept_and_refuses_keys(tmp_path):
    path = tmp_path / "ck"
    with CheckpointStore(path, meta={"model": "qwen-plus", "base_url": "http://127.0.0.1:1/v1"}):
        pass
    first = json.loads((path / "_batchframe.json").read_text())
    assert first["format_version"] == FORMAT_VERSION and first["library_version"]
    assert first["meta"]["model"] == "qwen-plus" and first["created_at"]
    with CheckpointStore(path, meta={"prices": {"input": 0.4}}):
        pass
    second = json.loads((path / "_batchframe.json").read_text())
    assert second["created_at"] == first["created_at"] and second["meta"]["model"] == "qwen-plus"
    secret = "sk-" + "0123456789abcdef" * 2  # built at run time: no key-shaped literal in the repo
    for meta in ({"note": secret}, {"params": {"headers": [f"Bearer {secret}"]}}, {"api_key": "whatever"}):
        with pytest.raises(CheckpointError) as err:
            CheckpointStore(tmp_path / "other", meta=meta)
        assert secret not in str(err.value) and "whatever" not in str(err.value)
    assert not (tmp_path / "other").exists()
    assert "sk-" not in (path / "_batchframe.json").read_text()


def test_checkpoint_summary(tmp_path):
    path = tmp_path / "ck"
    with CheckpointStore(path) as store:
        store.write(["i:1", "i:2"], ok("a"), cost=0.25)
        store.write(["i:3"], failed("b", "InvalidParameter"))
        store.write(["i:4"], failed("c", "DataInspectionFailed"))
        store.write(["i:4"], failed("d", "DataInspectionFailed"))  # superseded: counted once
    summary = checkpoint_summary(path)
    assert summary["rows"] == 4 and summary["ok"] == 2 and summary["failed"] == 2
    assert summary["by_error_code"] == {"InvalidParameter": 1, "DataInspectionFailed": 1}
    assert summary["prompt_tokens"] == 20 and summary["completion_tokens"] == 4
    assert summary["cost"] == pytest.approx(0.5)


def test_empty_checkpoint_loads_typed_and_empty(tmp_path):
    path = tmp_path / "ck"
    CheckpointStore(path).open().close()
    df = load_checkpoint(path)
    assert len(df) == 0 and list(df.columns) == ["key", "label", "rid", *RESULT_COLUMNS, "written_at"]
    assert checkpoint_summary(path)["rows"] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        raw = pd.read_parquet(path)
    assert len(raw) == 0 and list(raw.columns) == ["key", "rid", "seq", "written_at", *RESULT_COLUMNS]
