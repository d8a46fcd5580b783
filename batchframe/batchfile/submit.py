"""Phase A, submit: the rows a run would send, streamed into chunk files, each submitted as it closes.

Over the source batch by batch, with the run's own pieces: ``rows.prepare`` (messages and request
hashes), the run's checkpoint ``Reuse`` (rows already answered send nothing), the spec's request
bodies. Each row left is, in this order: already mapped to a live chunk (a re-attach: nothing to
do); a repeat of a request in the open chunk or a live one (its key joins that line: one line per
distinct request, billed once); else a new line, if ``max_cost`` still holds its worst case (and,
with ``file_test``, within the test model's 100 lines). A chunk closes at ``max_lines`` /
``max_bytes``; closed, it is recorded and gets its file and batch at once (``JobContext.ensure``).

First of all, a re-attach heals the live chunks left without a file or a batch by a crash.
Memory: the open chunk's map (at most ``max_lines`` requests), 12 bytes per request of a live chunk
(``RidIndex``) and, on a re-attach, 8 bytes per row already mapped.
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from typing import Any

import numpy as np

from ..checkpoint.hashes import SeenHashes, hashes
from ..records import Result
from ..rows.prepare import prepare
from .chunks import LINE_MAX_BYTES, OpenChunk, RidIndex, group_of, line_bytes, read_pairs, write_map
from .context import JobContext
from .options import TEST_MAX_LINES
from .record import chunk_path

log = logging.getLogger("batchframe")
TOO_LARGE = "request_too_large"


class Submitter:
    def __init__(self, ctx: JobContext, opts: Any, source: Any, reuse: Any, *, deadline: float | None) -> None:
        self.ctx, self.opts, self.source, self.reuse = ctx, opts, source, reuse
        self.deadline = deadline
        self.index = RidIndex()
        self.mapped: SeenHashes | None = None
        self.open: OpenChunk | None = None
        self.full = False
        self.stop: str | None = None
        self._tag = secrets.token_hex(3)
        self._extra_n = 0

    def run(self) -> str | None:
        """Submit what is left; the stop reason (None, "budget", "deadline", "interrupted", "fatal")."""
        ctx = self.ctx
        for chunk in ctx.log.live():  # a crash left these without a file or a batch: heal first
            if chunk.batch_id is None:
                ctx.ensure(chunk)
        self._load_live()
        return self._stream()

    def _stream(self) -> str | None:
        ctx = self.ctx
        for rows in self.source.batches():
            if ctx.stopped():
                self._discard_open()
                return "interrupted"
            if self.deadline is not None and ctx.clock() >= self.deadline:
                self.stop = "deadline"
                break
            self._batch(rows)
        if self.open is not None:
            self._close()
        return self.stop

    def _load_live(self) -> None:
        for chunk in self.ctx.log.live():
            rids, keys = read_pairs(self.ctx.dir, chunk.n)
            if not rids:
                continue
            self.index.add(list(dict.fromkeys(rids)), chunk.n)
            if self.mapped is None:
                self.mapped = SeenHashes()
            self.mapped.add(hashes([f"{k}\x00{r}" for r, k in zip(rids, keys)]))

    def _batch(self, rows: Any) -> None:
        ctx, opts = self.ctx, self.opts
        prepared = prepare(rows.frame, rows.keys, opts.rows, opts.spec, dedupe=opts.dedupe)
        reused = self.reuse.lookup(rows.keys, prepared.rids) if self.reuse is not None else None
        use = reused.use if reused is not None else np.zeros(len(rows.keys), dtype=bool)
        if ctx.progress is not None:
            ctx.progress.settle((reused.count if reused is not None else 0) + len(prepared.errors))
        rids, keys, messages = prepared.rids, rows.keys, prepared.messages
        todo = [p for p in np.flatnonzero(~use).tolist() if rids[p] is not None]
        if not todo:
            return
        mapped = (self.mapped.contains(hashes([f"{keys[p]}\x00{rids[p]}" for p in todo]))
                  if self.mapped is not None else None)
        where = self.index.lookup([rids[p] for p in todo]).tolist()
        repeated = _repeated([rids[p] for p in todo])
        placed: dict[str, int] = {}  # a request repeated within this batch -> the chunk of its line
        extra: dict[int, dict[str, list[str]]] = defaultdict(dict)
        for i, pos in enumerate(todo):
            rid, key = rids[pos], keys[pos]
            if mapped is not None and mapped[i]:
                continue
            if self.open is not None and rid in self.open.keys:
                self.open.keys[rid].append(key)
            elif where[i] >= 0 or (repeated[i] and rid in placed):
                extra[where[i] if where[i] >= 0 else placed[rid]].setdefault(rid, []).append(key)
            elif not self.full and self._line(rid, [key], messages[pos]) and repeated[i]:
                placed[rid] = self.open.n
        self._more_keys(extra)

    def _more_keys(self, extra: dict[int, dict[str, list[str]]]) -> None:
        """Rows joining the line of a closed chunk: one more map for it, recorded."""
        ctx = self.ctx
        for n, items in extra.items():
            self._extra_n += 1
            added = write_map(chunk_path(ctx.dir, n, f".keys-{self._tag}-{self._extra_n:06d}.parquet"),
                              items.items())
            ctx.log.append({"e": "keys", "n": n, "rows": added})

    def _line(self, rid: str, keys: list[str], messages: Any) -> bool:
        """A new line for ``rid`` in the open chunk (True), or the rows' failure / no room (False)."""
        ctx, file = self.ctx, self.ctx.file
        body = self.opts.spec.body(messages)
        data = line_bytes(rid, file.endpoint, body)
        if len(data) > min(file.max_bytes, LINE_MAX_BYTES):
            self._too_large(rid, keys, f"the request is {len(data):,} bytes: over the "
                            f"{min(file.max_bytes, LINE_MAX_BYTES):,} bytes a batch line may have "
                            "(file_max_bytes, and 6 MB a line); no request sent")
            return False
        if file.test and ctx.stats.lines >= TEST_MAX_LINES:
            self.full = True
            log.warning("batchframe: file_test=True sends at most %d lines (the free test model's limit): "
                        "the other rows stay pending", TEST_MAX_LINES)
            return False
        group = group_of(body)
        if self.open is not None and not self.open.fits(len(data), file.line_limit, file.max_bytes, group):
            self._close()
        worst = ctx.budget.worst(body)
        if not ctx.budget.fits((self.open.reserve if self.open is not None else 0.0) + worst):
            self.full, self.stop = True, "budget"
            return False
        if self.open is None:
            self.open = self._new_chunk()
        self.open.add(rid, keys, data, worst, group)
        ctx.stats.lines += 1
        return True

    def _too_large(self, rid: str, keys: list[str], why: str) -> None:
        ctx = self.ctx
        res = Result.failure(rid, why, TOO_LARGE, 0)
        ctx.store.write(keys, res, 0.0 if ctx.prices else None)
        ctx.summary.add(res, len(keys), None)
        if ctx.progress is not None:
            ctx.progress.add(len(keys), failed=True, prompt=None, completion=None, reasoning=None, cost=None)

    def _new_chunk(self) -> OpenChunk:
        return OpenChunk(self.ctx.dir, self.ctx.log.next_n())

    def _closing(self, chunk: OpenChunk) -> None:
        """Files of a chunk beside its lines and map, written before it is recorded (none here)."""

    def _close(self) -> None:
        ctx, chunk = self.ctx, self.open
        self.open = None
        event = chunk.close()
        self._closing(chunk)
        ctx.log.append(event)
        ctx.budget.reserve(chunk.reserve)
        self.index.add(list(chunk.keys), chunk.n)
        ctx.ensure(ctx.log.chunks[chunk.n])

    def _discard_open(self) -> None:
        if self.open is not None:
            self.ctx.stats.lines -= self.open.lines
            self.open.discard()
            self.open = None


def _repeated(rids: list[str]) -> np.ndarray:
    """Per rid: whether it occurs more than once in ``rids``."""
    if not rids:
        return np.zeros(0, dtype=bool)
    _, inverse, counts = np.unique(hashes(rids), return_inverse=True, return_counts=True)
    return counts[inverse] > 1
