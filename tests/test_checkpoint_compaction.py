"""Compaction never breaks a reader: at every step of it (merge, record, empty, reuse a name), a reader
that listed the directory earlier opens what it listed without an error and without losing a row, and
load_checkpoint counts every key once; a crash at any step loses and doubles nothing.

Deterministic: the store calls ``on_step(name)`` at each step; the tests read (or crash) there. The
wall clock that times the grace period is a fake one.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from batchframe.checkpoint import files as F
from batchframe.checkpoint import superseded as S
from batchframe.checkpoint.read import read_rows
from batchframe.checkpoint.store import COMPACT_AT_CLOSE, CheckpointStore, checkpoint_summary, load_checkpoint
from batchframe.records import Result

GRACE = 100.0


class Crash(BaseException):
    """Injected at a step: like a Ctrl-C landing there (not caught by the store's own handlers)."""


def ok(rid: str) -> Result:
    return Result(rid=rid, status="ok", response=f"answer {rid}", attempts=1)


def resumed(store: CheckpointStore) -> dict[str, str]:
    """key -> rid of the current stored rows, as a run reads them to resume (the store open)."""
    table = F.current(read_rows(store.path, ["rid"], on_corrupt=store.quarantine))
    return dict(zip(table["key"].to_pylist(), table["rid"].to_pylist()))


def listing(path) -> list[str]:
    """What pyarrow's directory reader lists: every file not starting with '.' or '_'."""
    return sorted(n for n in os.listdir(path) if not n.startswith((".", "_")))


class Run:
    """A scripted run on a fake wall clock: small parts, compaction twice, the merged-away parts
    emptied after the grace, their names taken again by a journal and by a merged part."""

    def __init__(self, path, on_step=None):
        self.path, self.now = path, [1000.0]
        self.history: dict[str, list[str]] = {}  # key -> rids in the order written
        self.on_step = on_step
        self.steps: list[str] = []
        self.errors: list[Exception] = []  # what a check at a step found

    @property
    def expected(self) -> dict[str, str]:
        return {k: v[-1] for k, v in self.history.items()}

    def store(self, **kw) -> CheckpointStore:
        return CheckpointStore(self.path, part_rows=3, part_seconds=1e9, wall_clock=lambda: self.now[0],
                               grace_s=GRACE, on_step=self._step, **kw)

    def _step(self, name: str) -> None:
        self.steps.append(name)
        if self.on_step is not None:
            try:
                self.on_step(self, name)
            except Exception as exc:  # kept: the store would take it for a failed flush and go on
                self.errors.append(exc)

    def write(self, store, key: str, rid: str) -> None:
        self.history.setdefault(key, []).append(rid)  # before: the journal holds it before any step
        store.write([key], ok(rid))

    def script(self) -> None:
        with self.store() as store:
            for n in range(10):
                self.write(store, f"i:{n % 7}", f"a{n}")  # parts of 3 rows; keys 0-2 written twice
            store.flush()
            store.compact()                               # everything merged; the old parts superseded
            for n in range(5):
                self.write(store, f"i:{n + 6}", f"b{n}")  # a part (its flush: the grace not yet over)
            self.now[0] += GRACE
            store.flush()                                 # ... then emptied: stubs
            for n in range(5):
                self.write(store, f"i:{n}", f"c{n}")      # a journal and a part on stubs' names
            store.flush()
            store.compact()                               # the merged part on a stub's name too
            self.now[0] += GRACE


def check_reader(rows: pd.DataFrame, run: Run, expected: dict[str, str], where: str) -> None:
    """Every key of ``expected`` is there, at the rid expected or one written after it."""
    latest = rows.sort_values("seq").groupby("key")["rid"].last()
    for key, rid in expected.items():
        assert key in latest.index, f"{where}: {key} lost"
        later = run.history[key][run.history[key].index(rid):]
        assert latest[key] in later, f"{where}: {key} is {latest[key]}, expected one of {later}"


def check_load(path, run: Run, where: str) -> None:
    df = load_checkpoint(path)
    assert df["key"].is_unique, where
    assert dict(zip(df["key"], df["rid"])) == run.expected, where
    assert checkpoint_summary(path)["rows"] == len(run.expected), where


@pytest.mark.slow
def test_every_listing_opens_at_every_later_step(tmp_path):
    """List at step i, open at step j >= i: no FileNotFoundError; no row lost unless the grace passed
    in between (a reader slower than the grace may miss rows, never get an error)."""
    path = tmp_path / "ck"
    seen: list[tuple[str, list[str], dict, float]] = []  # (step, listing, expected, wall clock)

    def at_step(run: Run, name: str) -> None:
        where = f"step {len(run.steps)} {name}"
        check_load(path, run, where)
        raw = pd.read_parquet(path)  # lists and opens at this instant
        check_reader(raw, run, run.expected, where)
        seen.append((where, listing(path), run.expected, run.now[0]))
        open_all(run, where)

    def open_all(run: Run, now_where: str) -> None:
        for where, names, expected, then in seen:
            table = ds.dataset([str(path / n) for n in names], format="parquet").to_table()
            if run.now[0] - then < GRACE:
                check_reader(table.to_pandas(), run, expected, f"listed at {where}, opened at {now_where}")

    run = Run(path, at_step)
    run.script()
    assert not run.errors, run.errors[0]
    open_all(run, "the end")
    check_load(path, run, "the end")
    names = set(run.steps)
    assert {"compact:published", "compact:recorded", "stub:announced", "stub:replaced", "stub:done",
            "flush:published", "flush:done"} <= names
    assert len(seen) > 20 and len(listing(path)) < 10


class Stepper(pafs.FileSystemHandler):
    """The local filesystem, except that after listing a directory, its first open lets the writer
    (in another thread) take one step: pd.read_parquet lists, the writer moves, then it opens."""

    def __init__(self, advance):
        self.fs, self.advance, self.listed = pafs.LocalFileSystem(), advance, False

    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return self is not other

    def get_type_name(self):
        return "stepper"

    def normalize_path(self, path):
        return path

    def get_file_info(self, paths):
        return self.fs.get_file_info(paths)

    def get_file_info_selector(self, selector):
        self.listed = True
        return self.fs.get_file_info(selector)

    def open_input_file(self, path):
        if self.listed:
            self.listed = False
            self.advance()
        return self.fs.open_input_file(path)

    def open_input_stream(self, path):
        return self.fs.open_input_stream(path)

    def _no(self, *args):
        raise NotImplementedError

    create_dir = delete_dir = delete_dir_contents = delete_root_dir_contents = delete_file = _no
    move = copy_file = open_output_stream = open_append_stream = _no


def test_read_parquet_of_the_directory_while_the_writer_takes_a_step(tmp_path):
    """The issue's reader, exactly: pd.read_parquet(checkpoint_dir), with the writer moving one step
    between its listing and its opening the files, at every step of the run."""
    path = tmp_path / "ck"
    arrived: queue.Queue = queue.Queue()
    go: queue.Queue = queue.Queue()
    failure: list[BaseException] = []

    def at_step(run: Run, name: str) -> None:
        arrived.put(name)
        go.get(timeout=60)

    run = Run(path, at_step)

    def writer():
        try:
            run.script()
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
        finally:
            arrived.put(None)

    def advance():
        go.put(True)
        state["step"] = arrived.get(timeout=60)

    state = {"step": ""}
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    state["step"] = arrived.get(timeout=60)
    reads = 0
    while state["step"] is not None:
        expected = run.expected  # the writer waits: what a listing now must show
        where = f"listed at {state['step']}"
        raw = pd.read_parquet(path, filesystem=pafs.PyFileSystem(Stepper(advance)))
        check_reader(raw, run, expected, where)
        reads += 1
    thread.join(timeout=60)
    assert not failure and not run.errors, (failure, run.errors)
    assert reads == len(run.steps) and reads > 20


def steps_of_the_run(tmp_path) -> list[str]:
    run = Run(tmp_path / "dry")
    run.script()
    return run.steps


@pytest.mark.slow
@pytest.mark.parametrize("as_ctrl_c", [False, True], ids=["kill-9", "interrupt"])
def test_a_crash_at_every_step_loses_and_doubles_nothing(tmp_path, as_ctrl_c):
    """kill-9: the directory as a crash at that step leaves it, reopened. interrupt: the step raises
    in the live store (its ``with`` closes it, as after Ctrl-C), then the checkpoint is reopened."""
    steps = steps_of_the_run(tmp_path)
    for k, name in enumerate(steps):
        path, crashed = tmp_path / f"ck{k}", tmp_path / f"crashed{k}"
        where = f"crash at step {k} {name}"

        def at_step(run: Run, step: str) -> None:
            if len(run.steps) == k + 1:
                if not as_ctrl_c:
                    shutil.copytree(path, crashed)
                raise Crash(where)

        run = Run(path, at_step)
        with pytest.raises(Crash):
            run.script()
        run.on_step = None
        if not as_ctrl_c:
            run.path = crashed
        check_load(run.path, run, where + ", read-only")
        for later in (0.0, 2 * GRACE):  # reopened: at once, and after the grace (parts emptied)
            run.now[0] += later
            with run.store() as store:
                assert resumed(store) == run.expected, where
            check_load(run.path, run, where + f", reopened +{later:g} s")
            check_reader(pd.read_parquet(run.path), run, run.expected, where)
        with run.store() as store:  # and the checkpoint goes on working
            run.write(store, "i:0", "after")
            store.flush()
            store.compact()
        run.now[0] += 2 * GRACE
        run.store().open().close()
        check_load(run.path, run, where + ", after another run")
        assert len(pd.read_parquet(run.path)) == len(run.expected), where  # the merged-away ones emptied
        assert len(listing(run.path)) <= 12, (where, listing(run.path))


def test_own_readers_skip_superseded_parts(tmp_path):
    """Within the grace, the raw read shows the merged-away rows too; load_checkpoint, the summary
    and resume read every row once."""
    path = tmp_path / "ck"
    with CheckpointStore(path, part_rows=2) as store:
        for n in range(12):
            store.write([f"i:{n % 6}"], ok(f"r{n}"))
        store.flush()
        store.compact()
    assert len(pd.read_parquet(path)) == 12 + 6
    assert read_rows(str(path), ["rid"]).num_rows == 6
    assert len(load_checkpoint(path)) == 6 and checkpoint_summary(path)["rows"] == 6


def test_own_reader_slower_than_the_grace_reads_again(tmp_path, monkeypatch):
    """load_checkpoint lists, then (before it opens anything) the writer compacts, the grace passes
    and the merged-away parts are emptied: it notices (the generation moved) and reads again."""
    path, now = tmp_path / "ck", [0.0]
    store = CheckpointStore(path, part_rows=2, wall_clock=lambda: now[0], grace_s=GRACE).open()
    for n in range(6):
        store.write([f"i:{n}"], ok(f"r{n}"))
    scan, moved = F.scan, []

    def list_then_let_the_writer_move(dirpath):
        listed = scan(dirpath)
        if not moved:
            moved.append(True)
            store.compact()
            now[0] += GRACE
            store.write(["i:6"], ok("r6"))
            store.write(["i:7"], ok("r7"))  # a flush: the old parts emptied now
            assert S.read(str(path)).generation == 1
        return listed

    monkeypatch.setattr(F, "scan", list_then_let_the_writer_move)
    df = load_checkpoint(path)
    assert moved and set(df["key"]) == {f"i:{n}" for n in range(8)}
    store.close()


def test_a_stale_missing_or_damaged_manifest_is_never_wrong(tmp_path):
    path = tmp_path / "ck"
    run = Run(path)
    old_manifest = {}

    def keep(run: Run, name: str) -> None:
        if name == "compact:recorded" and not old_manifest:
            old_manifest["data"] = (path / F.MANIFEST).read_bytes()  # before the stubs and their reuse

    run.on_step = keep
    run.script()
    assert not run.errors
    (path / F.MANIFEST).write_bytes(old_manifest["data"])  # stale: names it lists now hold new rows
    check_load(path, run, "stale manifest")
    (path / F.MANIFEST).write_bytes(b"{not json")
    check_load(path, run, "damaged manifest")
    (path / F.MANIFEST).unlink()
    check_load(path, run, "no manifest")
    with run.store() as store:
        assert resumed(store) == run.expected
    check_load(path, run, "reopened without a manifest")


def test_a_lost_merged_part_brings_back_the_parts_it_replaced(tmp_path):
    """The merged part is damaged while its predecessors are still whole: readers read those after
    all, and the writer sets the damaged part aside and counts them as live again."""
    path = tmp_path / "ck"
    with CheckpointStore(path, part_rows=2) as store:
        for n in range(6):
            store.write([f"i:{n}"], ok(f"r{n}"))
        store.flush()
        store.compact()
    (heir,) = {e.by for e in S.read(str(path)).entries}
    merged = next(n for n in listing(path) if F.part_info(str(path / n)).id == heir)
    data = (path / merged).read_bytes()
    (path / merged).write_bytes(data[: len(data) // 2])
    with pytest.warns(RuntimeWarning, match="unreadable"):
        assert len(load_checkpoint(path)) == 6
    with pytest.warns(RuntimeWarning, match="re-run"):
        store = CheckpointStore(path).open()
    assert len(resumed(store)) == 6
    store.close()
    assert not S.read(str(path)).entries and len(load_checkpoint(path)) == 6


def test_the_files_stay_few_over_many_runs(tmp_path):
    """Names of emptied parts are taken again: over 60 short runs, each adding a small part and
    compacting at close, the files beside the live parts (merged-away ones within their grace, empty
    stubs) stay few; without the reuse they would grow by every part ever merged away."""
    path, now = tmp_path / "ck", [0.0]
    merged_away = 0
    for r in range(60):
        with CheckpointStore(path, part_rows=10, wall_clock=lambda: now[0], grace_s=GRACE) as store:
            for n in range(4):
                store.write([f"i:{(4 * r + n) % 40}"], ok(f"r{r}-{n}"))
        now[0] += GRACE / 4
        merged_away = max(merged_away, len(S.read(str(path)).entries))
        idle = len(listing(path)) - len(live(path))
        assert idle <= 2 * (COMPACT_AT_CLOSE + 1), (r, idle)
    assert merged_away >= COMPACT_AT_CLOSE  # compaction did run
    assert len(load_checkpoint(path)) == 40


def live(path) -> list[str]:
    gone = set(S.read(str(path)).by)
    infos = {n: F.part_info(str(path / n)) for n in listing(path)}
    return [n for n, i in infos.items() if not i.stub and i.id not in gone]
