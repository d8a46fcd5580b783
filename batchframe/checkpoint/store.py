"""The checkpoint store: one writer per directory, every answer durable before it counts as done.

    with CheckpointStore(path, meta={"model": ..., "base_url": ...}) as store:
        store.write(["i:0", "i:7"], result, cost)   # one request's result, for every row sharing it

``write()`` appends one orjson line per row key to a journal with a single ``os.write`` (plus
``os.fsync`` with ``fsync=True``): when it returns, a ``kill -9`` loses nothing. Every ``part_rows``
rows or ``part_seconds`` seconds (and at ``flush()``/``close()``) the journal's rows become a Parquet
part, published atomically, and only then is the journal deleted. ``open()`` turns a crashed run's
journals into parts; ``close()`` compacts all parts into one (current row per key, sorted by key).
Later writes of a key win by ``seq``, which increases across runs. The file layout is described in
``_checkpoint_files``.

Not thread-safe: one thread (the run's dispatcher) calls ``write()``.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import operator
import os
import secrets
import socket
import time
from typing import Any, Callable, Mapping, Sequence

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from . import files as F
from . import meta as M
from .meta import FORMAT_VERSION
from .read import checkpoint_summary, load_checkpoint
from ..records import FAILED, OK, Result
from ..exceptions import CheckpointError, CheckpointLocked, ConfigError

__all__ = ["FORMAT_VERSION", "CheckpointStore", "load_checkpoint", "checkpoint_summary"]

MAX_PARTS = 64  # more parts than this: compact while running
# More parts than this at close: merge them. Not fewer: a rerun that adds 10 rows to a 1M-row
# checkpoint must not pay for rewriting all of it.
COMPACT_AT_CLOSE = 8
# fdatasync flushes the appended bytes and the file size (all a journal needs), not the mtime
_datasync = getattr(os, "fdatasync", os.fsync)
_values = operator.attrgetter(*F.STORED)
_EXTRA_NONE = (None,) * len(F.EXTRA)
_COST_AT = F.EXTRA.index("cost") if "cost" in F.EXTRA else -1
_ONLY_COST = F.EXTRA == ("cost",)
_dumps = orjson.dumps
_JSON_OPT = orjson.OPT_SERIALIZE_NUMPY


class CheckpointStore:
    """The one writer of a checkpoint directory. ``with CheckpointStore(path) as store: ...``"""

    def __init__(self, path: str | os.PathLike, *, fsync: bool = False, part_rows: int = 50_000,
                 part_seconds: float = 30.0, meta: Mapping[str, Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if int(part_rows) < 1:
            raise ConfigError(f"part_rows must be >= 1, got {part_rows!r}")
        if not part_seconds > 0:
            raise ConfigError(f"part_seconds must be > 0, got {part_seconds!r}")
        self.path = os.fspath(path)
        self.fsync = bool(fsync)
        self.part_rows = int(part_rows)
        self.part_seconds = float(part_seconds)
        self._clock = clock  # for part_seconds; tests pass a fake one
        self._meta = dict(meta or {})
        M.check_meta(self._meta)  # refuses key-like values before anything touches the disk
        self._lock_fd: int | None = None
        self._runid = ""
        self._next_n = 0
        self._journal_fd: int | None = None
        self._journal_n = -1
        self._newline = False  # a failed write may have left a partial line: start the next on a new one
        self._pending: list[tuple] = []  # rows in the journal, laid out as F.ROW_NAMES
        self._since = 0.0  # monotonic time of the first pending row
        self._retry_at = 0.0  # after a failed automatic flush, not before this monotonic time
        self._seq = 0
        self._parts: list[str] = []
        self._created = False  # this store made the directory (see close(discard_unused=))
        self._written = False

    def __repr__(self) -> str:
        state = "open" if self._lock_fd is not None else "closed"
        return f"CheckpointStore({self.path!r}, {state}, {len(self._parts)} parts, {len(self._pending)} pending)"

    def __enter__(self) -> "CheckpointStore":
        return self if self._lock_fd is not None else self.open()  # also ``with store.open():``

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(compact=exc_type is None)  # interrupted: save fast, compact on the next clean close

    # ---- open ----------------------------------------------------------------------------------

    def open(self) -> "CheckpointStore":
        if self._lock_fd is not None:
            raise CheckpointError(f"checkpoint {self.path} is already open in this store")
        path = self.path
        if os.path.exists(path) and not os.path.isdir(path):
            raise CheckpointError(f"checkpoint path {path} is a file; checkpoint= must be a directory")
        self._refuse_foreign()
        self._created = not os.path.exists(path)
        os.makedirs(path, exist_ok=True)
        self._lock_fd = _lock(path)
        try:
            stored = M.read_meta(path)
            if stored is None:
                self._refuse_foreign()  # again, now that we hold the lock
                stored = {"format_version": FORMAT_VERSION, "created_at": _now_iso()}
            M.check_version(path, stored)
            before = stored.get("meta")
            meta = {**(before if isinstance(before, dict) else {}), **self._meta}  # this run's keys win
            M.write_meta(path, {"format_version": FORMAT_VERSION, "library": "batchframe",
                                "library_version": M.library_version(),
                                "created_at": stored.get("created_at"), "updated_at": _now_iso(),
                                "meta": meta}, fsync=self.fsync)
            self._runid = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)
            self._next_n = 0
            self._recover()
            if not self._parts:  # an empty part: the raw read has the fixed columns from the start
                self._parts = [self._publish(F.table_from_rows([]))]
        except BaseException:
            self._unlock()
            raise
        return self

    def _refuse_foreign(self) -> None:
        if os.path.isdir(self.path) and not os.path.exists(os.path.join(self.path, M.META)):
            if any(not F.is_ours(name) for name in os.listdir(self.path)):
                raise CheckpointError(
                    f"{self.path} is not empty and is not a batchframe checkpoint (no {M.META}); "
                    f"refusing to write into it. Point checkpoint= at a new or empty directory.")

    def _recover(self) -> None:
        path = self.path
        parts, journals, temps = F.scan(path)
        for name in temps:  # we hold the lock: these are a dead writer's
            _remove(os.path.join(path, name))
        max_seq, good = -1, []
        for name in parts:
            try:
                max_seq = max(max_seq, F.part_max_seq(os.path.join(path, name)))
                good.append(name)
            except (F.CorruptPart, FileNotFoundError) as exc:
                F.quarantine(path, name, str(exc))
        for name in journals:  # journal <x> becomes part <x>, merged with it if it was published
            part = F.part_of_journal(name)
            table = F.journal_table(os.path.join(path, name))
            if part in good:
                published = self._read(part, F.schema().names, good)
                if published is not None:
                    table = F.unique_seq(pa.concat_tables([published, table]))
            if table.num_rows:
                F.write_part(table, path, part, fsync=self.fsync)
                if part not in good:
                    good.append(part)
                max_seq = max(max_seq, pc.max(table["seq"]).as_py())
            _remove(os.path.join(path, name))
        if journals and self.fsync:
            M.fsync_dir(path)
        self._parts = sorted(good)
        self._seq = max_seq + 1

    # ---- write ---------------------------------------------------------------------------------

    def write(self, keys: Sequence[str], result: Result, cost: float | None = None) -> None:
        """Store one request's final result for every row key sharing it. Durable on return."""
        if self._lock_fd is None:
            raise CheckpointError(f"checkpoint {self.path} is not open")
        if isinstance(keys, str):
            raise TypeError("keys must be a sequence of row keys, not one string")
        status = result.status
        if status != OK and status != FAILED:
            raise ValueError(f"only final results are stored (status 'ok' or 'failed'), got {status!r}")
        if cost is not None and cost != cost:  # NaN: stored as null, in the part as in the journal
            cost = None
        if _ONLY_COST:
            vals = _values(result) + (cost,)
        else:
            extra = list(_EXTRA_NONE)
            if _COST_AT >= 0:
                extra[_COST_AT] = cost
            vals = _values(result) + tuple(extra)
        rid, ts = result.rid, time.time_ns() // 1000
        tail = _dumps(dict(zip(F.BODY_NAMES, (rid, ts) + vals)), option=_JSON_OPT)
        tail = b"," + tail[1:] + b"\n"
        rows, seq = self._pending, self._seq
        start = len(rows)
        chunks = []
        try:
            for key in keys:
                if type(key) is not str:
                    raise TypeError(f"row keys are strings (see batchframe._keys), got {type(key).__name__}")
                chunks.append(b'{"key":%b,"seq":%d%b' % (_dumps(key), seq, tail))
                rows.append((key, rid, seq, ts) + vals)
                seq += 1
            if not chunks:
                return
            self._written = True
            self._seq = seq  # reserved before the write: an interrupted write leaves a gap, never a reuse
            data = b"".join(chunks)
            if self._newline:
                data = b"\n" + data
            fd = self._journal_fd if self._journal_fd is not None else self._open_journal()
            n = os.write(fd, data)
            while n < len(data):  # a short write (disk nearly full): write the rest
                data = data[n:]
                n = os.write(fd, data)
            if self.fsync:
                _datasync(fd)
        except BaseException:
            del rows[start:]
            self._newline = bool(chunks)
            raise
        self._newline = False
        now = self._clock()
        if start == 0:
            self._since = now
        if (len(rows) >= self.part_rows or now - self._since >= self.part_seconds) and now >= self._retry_at:
            self._auto_flush()

    def _open_journal(self) -> int:
        self._journal_n = self._next_n
        self._next_n += 1
        name = f"{F.JOURNAL_PREFIX}{self._runid}-{self._journal_n:06d}{F.JOURNAL_SUFFIX}"
        fd = os.open(os.path.join(self.path, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                     0o644)
        if self.fsync:
            M.fsync_dir(self.path)
        self._journal_fd = fd
        return fd

    def _auto_flush(self) -> None:
        try:
            self.flush()
        except Exception as exc:  # the rows are safe in the journal; try again later
            F.log.warning("checkpoint %s: could not write a Parquet part (%s); rows stay in the journal, "
                          "retrying in %.0f s", self.path, exc, self.part_seconds)
            self._retry_at = self._clock() + self.part_seconds

    # ---- flush / compact / close ---------------------------------------------------------------

    def flush(self) -> None:
        """Turn the journal's rows into a Parquet part now (atomic), then start a new journal."""
        if self._lock_fd is None:
            raise CheckpointError(f"checkpoint {self.path} is not open")
        if self._journal_fd is None:
            return
        if self._pending:
            part = f"{F.PART_PREFIX}{self._runid}-{self._journal_n:06d}{F.PART_SUFFIX}"
            F.write_part(F.table_from_rows(self._pending), self.path, part, fsync=self.fsync)
            if part not in self._parts:  # an interrupted flush may have published it already
                self._parts.append(part)
        # Order matters if Ctrl-C lands in between: first send new writes to a new journal, then drop
        # the rows from memory, then delete the old journal (a leftover one is merged at next open).
        fd, self._journal_fd = self._journal_fd, None
        self._pending = []
        self._close_fd(fd, delete=True)
        if len(self._parts) > MAX_PARTS:
            self.compact(small_only=True)

    def _close_fd(self, fd: int | None, *, delete: bool) -> None:
        if fd is None:
            return
        os.close(fd)
        if delete:
            name = f"{F.JOURNAL_PREFIX}{self._runid}-{self._journal_n:06d}{F.JOURNAL_SUFFIX}"
            _remove(os.path.join(self.path, name))
            if self.fsync:
                M.fsync_dir(self.path)

    def compact(self, *, small_only: bool = False) -> None:
        """Merge parts into one (current row per key, sorted by key): published before the old
        parts are deleted, so a crash in between leaves duplicates that seq resolves.

        ``small_only``: merge only parts under half of ``part_rows`` (the leftovers of short runs
        and time-based flushes), never the full ones: what happens automatically, so memory stays
        bounded by ``part_rows`` whatever the checkpoint's size. Without it, every part is merged.
        """
        if self._lock_fd is None:
            raise CheckpointError(f"checkpoint {self.path} is not open")
        old = list(self._parts)
        if small_only:
            old = [name for name in old if F.part_rows(os.path.join(self.path, name)) < self.part_rows // 2]
        if len(old) <= 1:
            return
        columns = F.schema().names
        tables = [t for t in (self._read(name, columns) for name in old) if t is not None]
        table = F.current(pa.concat_tables(tables)) if tables else F.table_from_rows([])
        merged = self._publish(table)
        self._parts = [p for p in self._parts if p not in old] + [merged]
        for name in old:
            _remove(os.path.join(self.path, name))
        if self.fsync:
            M.fsync_dir(self.path)

    def _publish(self, table: pa.Table) -> str:
        """A new part under a number no journal uses."""
        name = f"{F.PART_PREFIX}{self._runid}-{self._next_n:06d}{F.PART_SUFFIX}"
        self._next_n += 1
        F.write_part(table, self.path, name, fsync=self.fsync)
        return name

    def close(self, *, compact: bool = True, discard_unused: bool = False) -> None:
        """Flush, compact when more than COMPACT_AT_CLOSE parts (unless ``compact=False``), release
        the lock. Idempotent. ``discard_unused``: a run that failed before storing anything removes
        the directory it created (never one that existed before), so a bad first request or a
        missing dependency leaves no half-made checkpoint behind."""
        if self._lock_fd is None:
            return
        if discard_unused and self._created and not self._written:
            self._discard()
            return
        try:
            self.flush()
            if compact and len(self._parts) > COMPACT_AT_CLOSE:
                self.compact(small_only=True)
        finally:
            fd, self._journal_fd = self._journal_fd, None
            self._close_fd(fd, delete=False)  # only if flush failed: the journal is recovered next open
            self._unlock()

    def _discard(self) -> None:
        fd, self._journal_fd = self._journal_fd, None
        self._close_fd(fd, delete=True)
        self._unlock()
        ours = {M.META, F.LOCK, *self._parts}
        names = os.listdir(self.path)
        if all(name in ours for name in names):
            for name in names:
                _remove(os.path.join(self.path, name))
            try:
                os.rmdir(self.path)
            except OSError:
                pass

    def quarantine(self, dirpath: str, name: str, reason: str) -> None:
        """A part found unreadable while the run reads it: moved aside (the run holds the lock), its
        rows count as not done. The signature of ``read.read_rows``'s ``on_corrupt``."""
        F.quarantine(dirpath, name, reason)
        if name in self._parts:
            self._parts.remove(name)

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # ---- read ----------------------------------------------------------------------------------

    def _read(self, name: str, columns: Sequence[str], parts: list[str] | None = None) -> pa.Table | None:
        """One part, or None when it is unreadable (then moved aside and forgotten, with a warning)."""
        try:
            return F.read_part(os.path.join(self.path, name), columns)
        except (F.CorruptPart, FileNotFoundError) as exc:
            F.quarantine(self.path, name, str(exc))
            parts = self._parts if parts is None else parts
            if name in parts:
                parts.remove(name)
            return None


def _lock(path: str) -> int:
    name = os.path.join(path, F.LOCK)
    fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 256).decode("utf-8", "replace").strip() or "pid unknown"
        os.close(fd)
        raise CheckpointLocked(f"checkpoint {path} is being written by another run ({holder}); wait for "
                               f"it to finish or stop it, or use another checkpoint directory") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return fd


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
