"""The job's record in the checkpoint: ``<checkpoint>/_batchfile/``, invisible to ``pd.read_parquet``
and ``load_checkpoint`` (a ``_`` directory; parts are only ``part-*.parquet`` at the top).

    job.jsonl                       the log: one event a line, appended with one write, fdatasync'ed
    chunk-<n>.jsonl                 a chunk's input file (its lines), kept until the chunk is merged
    chunk-<n>.keys.parquet          rid -> row keys of the rows its lines answer (rid = custom_id)
    chunk-<n>.keys-<tag>.parquet    more rows for its lines, found later (a duplicate prompt)
    chunk-<n>.chains.json           a repair chunk's: follow-up rid -> the answer it repairs (max_repairs)

Events (``e``): ``job`` (id, the file endpoint, model, window), ``chunk`` (n, lines, bytes, rows,
attempt, parent, reserve: its worst-case cost, repair: its repair round), ``uploading`` / ``file`` (id), ``creating`` /
``batch`` (id, expires_at), ``keys`` (n, rows added), ``seen`` (the batch's status and counts when
they changed), ``cancel``, ``merged`` (its outcome, with the ``resubmit`` chunk declared in the same
line, so a crash never leaves both a merged-but-live parent and its retry), ``deleted`` (remote
files gone). A chunk is recorded only after its files are complete; anything on disk that the log
does not name is a dead run's leftover and is removed when the job is opened. Replaying the log
gives the state; a torn last line (a crash mid-write) is skipped.

One writer (the run holding the checkpoint's lock); readers (``status``) take no lock.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import time
from typing import Any, Iterator

import orjson

from ..checkpoint.meta import fsync_dir

DIRNAME = "_batchfile"
LOG = "job.jsonl"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
_CHUNK_FILE = re.compile(r"^chunk-(\d{6})\.")
_datasync = getattr(os, "fdatasync", os.fsync)


@dataclasses.dataclass
class Chunk:
    n: int
    lines: int
    bytes: int
    rows: int
    attempt: int = 1
    parent: int | None = None
    reserve: float = 0.0
    repair: int = 0                    # a repair round's chunk (its round): lines are follow-up turns
    recorded_at: float = 0.0
    uploading: bool = False
    file_id: str | None = None
    creating: bool = False
    batch_id: str | None = None
    status: str | None = None          # last seen
    total: int = 0
    completed: int = 0
    failed: int = 0
    expires_at: int | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    cancel: bool = False
    merged: dict | None = None         # the merge's outcome once merged
    deleted: bool = False

    @property
    def live(self) -> bool:
        return self.merged is None


def job_dir(checkpoint: str) -> str:
    return os.path.join(checkpoint, DIRNAME)


def chunk_path(dirpath: str, n: int, suffix: str = ".jsonl") -> str:
    return os.path.join(dirpath, f"chunk-{n:06d}{suffix}")


def chunk_files(dirpath: str, n: int) -> list[str]:
    prefix = f"chunk-{n:06d}."
    try:
        return sorted(os.path.join(dirpath, f) for f in os.listdir(dirpath) if f.startswith(prefix))
    except FileNotFoundError:
        return []


def map_files(dirpath: str, n: int) -> list[str]:
    """The chunk's maps, its first one first (its rows come first: the first key is the billed one)."""
    maps = [p for p in chunk_files(dirpath, n) if p.endswith(".parquet")]
    return sorted(maps, key=lambda p: (not p.endswith(".keys.parquet"), p))


class JobLog:
    """The state replayed from ``job.jsonl``; ``append(event)`` records one more (durable on return)."""

    def __init__(self, checkpoint: str) -> None:
        self.dir = job_dir(checkpoint)
        self.path = os.path.join(self.dir, LOG)
        self.job: dict | None = None
        self.chunks: dict[int, Chunk] = {}
        self._fd: int | None = None
        self._replay()

    @classmethod
    def exists(cls, checkpoint: str) -> bool:
        return os.path.exists(os.path.join(job_dir(checkpoint), LOG))

    # ---- reading ---------------------------------------------------------------------------------
    def _events(self) -> Iterator[dict]:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # torn by a crash mid-write
            if isinstance(event, dict) and isinstance(event.get("e"), str):
                yield event

    def _replay(self) -> None:
        for event in self._events():
            self._apply(event)

    def _apply(self, ev: dict) -> None:
        kind = ev["e"]
        if kind == "job":
            self.job = ev
            return
        n = ev.get("n")
        if kind == "chunk":
            self._declare(ev)
            return
        chunk = self.chunks.get(n)
        if chunk is None:
            return
        if kind == "uploading":
            chunk.uploading = True
        elif kind == "file":
            chunk.file_id = ev["id"]
        elif kind == "creating":
            chunk.creating = True
        elif kind == "batch":
            chunk.batch_id, chunk.expires_at = ev["id"], ev.get("expires_at")
            chunk.status = ev.get("status") or chunk.status
        elif kind == "seen":
            for name in ("status", "total", "completed", "failed", "expires_at", "output_file_id",
                         "error_file_id"):
                if name in ev:
                    setattr(chunk, name, ev[name])
        elif kind == "keys":
            chunk.rows += int(ev.get("rows") or 0)
        elif kind == "cancel":
            chunk.cancel = True
        elif kind == "merged":
            chunk.merged = {k: v for k, v in ev.items() if k not in ("e", "n", "resubmit")}
            if isinstance(ev.get("resubmit"), dict):
                self._declare(ev["resubmit"])
        elif kind == "deleted":
            chunk.deleted = True

    def _declare(self, ev: dict) -> None:
        fields = {f.name for f in dataclasses.fields(Chunk)}
        self.chunks[ev["n"]] = Chunk(**{k: v for k, v in ev.items() if k in fields})

    # ---- the state -------------------------------------------------------------------------------
    def live(self) -> list[Chunk]:
        return [c for c in self.chunks.values() if c.live]

    def next_n(self) -> int:
        return max(self.chunks, default=-1) + 1

    @property
    def job_id(self) -> str:
        return self.job["id"] if self.job else ""

    # ---- writing (the lock holder only) ----------------------------------------------------------
    def open(self, **job: Any) -> "JobLog":
        """Ready to append: the directory, the ``job`` event (once), leftovers of dead runs removed."""
        os.makedirs(self.dir, exist_ok=True)
        new = not os.path.exists(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        if new:
            fsync_dir(self.dir)
        if self.job is None:
            self.append({"e": "job", "id": secrets.token_hex(6), "created_at": time.time(), **job})
        self._tidy()
        return self

    def _tidy(self) -> None:
        for name in os.listdir(self.dir):
            m = _CHUNK_FILE.match(name)
            if name.startswith(".") and name.endswith(".tmp"):
                _remove(os.path.join(self.dir, name))
            elif m is not None:
                chunk = self.chunks.get(int(m[1]))
                if chunk is None or not chunk.live:  # never recorded, or merged: not needed any more
                    _remove(os.path.join(self.dir, name))

    def append(self, event: dict) -> None:
        if self._fd is None:
            raise RuntimeError("the job log is not open for writing")
        data = orjson.dumps(event, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
        n = os.write(self._fd, data)
        while n < len(data):
            data = data[n:]
            n = os.write(self._fd, data)
        _datasync(self._fd)
        self._apply(event)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
