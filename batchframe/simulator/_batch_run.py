"""Running one batch: validate its input file, answer its lines in a shuffled order, publish its files.

The order of the lines is a shuffle seeded by (seed, the input file's digest): the output and error
files are in that order, never the input's, and the same file runs in the same order every time.
Between two lines the runner checks, in this order: a cancel (→ cancelling → cancelled), an expiry
(``batch_expire_after_lines`` reached, :meth:`BatchStore.expire_all`, or ``expires_at`` passed →
expired), the hold (``hold_lines`` reached: wait until released). The lines not run are then error lines
or nothing, per ``batch_unfinished``.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

import orjson

from ._batch_lines import LineResult, Scan, scan_input, unfinished_record

if TYPE_CHECKING:
    from types import TracebackType

    from ._batches import Batch, BatchStore
    from ._files import FileStore

_YIELD_EVERY = 64
_UNFINISHED = {
    "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
    "cancelled": ("batch_cancelled", "This request was not executed because the batch was cancelled."),
}


class _Writer:
    """The batch's output and error files, written as lines finish, published at the end."""

    def __init__(self, files: FileStore, batch: Batch) -> None:
        self.files, self.batch = files, batch
        self.paths = {kind: files.new_path(f".{kind}.jsonl") for kind in ("output", "error")}
        self.handles: dict[str, IO[bytes]] = {}

    def write(self, result: LineResult) -> None:
        if result.record is None:
            return
        handle = self.handles.get(result.destination)
        if handle is None:
            handle = self.handles[result.destination] = self.paths[result.destination].open("ab")
        handle.write(orjson.dumps(result.record) + b"\n")

    def publish(self) -> None:
        """Register the files written (a file with no line gets no id) on the batch."""
        for kind, handle in list(self.handles.items()):
            handle.close()
            stored = self.files.add(self.paths.pop(kind), filename=f"{self.batch.id}_{kind}.jsonl",
                                    purpose="batch_output", prefix=f"file-batch_{kind}", uploaded=False)
            setattr(self.batch, f"{kind}_file_id", stored.id)
        self.handles.clear()

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for handle in self.handles.values():
            handle.close()
        for path in self.paths.values():  # what was not published
            path.unlink(missing_ok=True)


def _read(source: IO[bytes], scan: Scan, index: int) -> bytes:
    source.seek(scan.starts[index])
    return source.read(scan.ends[index] - scan.starts[index])


def _stop(batch: Batch, store: BatchStore, done: int) -> str | None:
    """Why the batch stops before its next line ("cancelled", "expired"), or None."""
    if batch.cancel_requested:
        return "cancelled"
    expire_after = store.config.batch_expire_after_lines
    if batch.expire_requested or (expire_after is not None and done >= expire_after) \
            or time.time() >= batch.expires_at:
        return "expired"
    return None


async def run_batch(batch: Batch, store: BatchStore) -> None:
    """Take ``batch`` from validating to a final status."""
    config = store.config
    await store.pause(batch, config.batch_validating_s)
    if batch.cancel_requested:
        store.move(batch, "cancelled")
        return
    stored = store.files.get(batch.input_file_id)
    if stored is None or stored.purpose != "batch":
        message = f"Cannot find file {batch.input_file_id}, or it is not a batch input file."
        batch.errors = [{"code": "invalid_request", "line": None, "param": "input_file_id", "message": message}]
        store.move(batch, "failed")
        return
    path = store.files.acquire(stored)
    try:
        scan = await asyncio.to_thread(scan_input, path, stored.bytes, batch.endpoint, config)  # off the loop
        await _run(batch, store, path, scan)
    finally:
        store.files.release(path)


async def _run(batch: Batch, store: BatchStore, path: Path, scan: Scan) -> None:
    config = store.config
    if scan.errors:
        batch.errors = scan.errors
        store.move(batch, "failed")
        return
    batch.total = len(scan)
    store.move(batch, "in_progress")
    order = list(range(len(scan)))
    random.Random(f"{config.seed}:".encode() + scan.digest).shuffle(order)
    with _Writer(store.files, batch) as writer, path.open("rb") as source:
        for done, index in enumerate(order):
            while (stop := _stop(batch, store, done)) is None and store.hold_lines is not None \
                    and done >= store.hold_lines:
                await store.nap(None)
            if stop is not None:
                _unfinished(batch, store, writer, source, scan, order[done:], stop)
                writer.publish()
                store.move(batch, stop)
                return
            result = store.answerer.answer(_read(source, scan, index), batch.endpoint, batch.authorization)
            writer.write(result)
            if result.failed:
                batch.failed += 1
            elif result.destination == "output":
                batch.completed += 1
            if config.batch_line_s:
                await store.nap(config.batch_line_s)
            elif done % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)
        if not batch.cancel_requested:
            store.move(batch, "finalizing")
            await store.pause(batch, config.batch_finalizing_s)
        writer.publish()
    store.move(batch, "cancelled" if batch.cancel_requested else "completed")


def _unfinished(batch: Batch, store: BatchStore, writer: _Writer, source: IO[bytes], scan: Scan,
                left: list[int], stop: str) -> None:
    """The lines a stopped batch did not run: error lines, or nothing (``batch_unfinished``)."""
    if store.config.batch_unfinished != "error":
        return
    code, message = _UNFINISHED[stop]
    for index in left:
        writer.write(LineResult("error", unfinished_record(_read(source, scan, index), code, message)))
        store.stats.line(None, code)
        batch.failed += 1
