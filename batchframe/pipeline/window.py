"""The window: batches read and not yet written, and the requests their rows wait for.

An open ``Batch`` holds its rows (a ``RowBatch``), one slot per row for this run's result and its
cost, what the checkpoint answered (``Reused``) and how many rows still wait. ``Window.register``
decides, for each row of a new batch that the checkpoint did not answer, in this order: attach it to
the same request already in flight; copy this run's earlier answer to the same request (from memory,
or read back from the checkpoint once it left memory); or queue a new request (none once sending
stopped: the row stays pending). ``Window.answer`` hands a final result to every row waiting for it:
the first row is billed, copies cost nothing (the checkpoint's cost column then sums to what was
spent, however the run was reached). Batches leave in input order (``ready``).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any, Callable, Iterator

import numpy as np

from ..checkpoint.hashes import SeenHashes, hashes
from ..records import OK, Result, RowBatch
from ..rows.prepare import Prepared


class Batch:
    __slots__ = ("rows", "errors", "fresh", "costs", "reused", "remaining")

    def __init__(self, rows: RowBatch, errors: dict) -> None:
        n = len(rows.keys)
        self.rows = rows
        self.errors = errors
        self.fresh: list[Result | None] = [None] * n
        self.costs: list[float | None] = [None] * n
        self.reused: Any = None       # checkpoint.reuse.Reused, or None
        self.remaining = 0            # rows waiting for an answer

    @property
    def n(self) -> int:
        return len(self.rows.keys)


class Window:
    def __init__(self, *, store: Any, reuse: Any, dedupe: bool, remember: int = 10_000) -> None:
        self.store, self.reuse, self.dedupe = store, reuse, dedupe
        self.open: deque[Batch] = deque()
        self.open_rows = 0
        self.inflight: dict[str, list[tuple[Batch, int]]] = {}
        self.queue: deque[tuple[str, Any]] = deque()  # (rid, messages) of new requests to send
        self.sending = True
        self._recent: OrderedDict[str, tuple[Result, float | None]] = OrderedDict()  # the last answers
        self._remember = remember
        self._answered = SeenHashes()  # requests this run answered (8 bytes each)
        self._fresh_answers: list[str] = []
        self.new_requests = 0

    def register(self, b: Batch, prepared: Prepared, on_copy: Callable[[Batch, int, Result, float | None], None]) -> None:
        taken = b.reused.use if b.reused is not None else np.zeros(b.n, dtype=bool)
        rids, messages = prepared.rids, prepared.messages
        todo = [p for p in np.flatnonzero(~taken).tolist() if rids[p] is not None]
        answered = self._answered_set()
        earlier = answered.contains(hashes([rids[p] for p in todo])) if answered is not None and todo else None
        maybe: list[int] = []
        for i, pos in enumerate(todo):
            rid = rids[pos]
            entry = self.inflight.get(rid)
            if entry is not None:
                entry.append((b, pos))
                b.remaining += 1
            elif rid in self._recent:
                on_copy(b, pos, *self._recent[rid])
            elif earlier is not None and earlier[i]:
                maybe.append(pos)
            elif self.sending:
                self._new(b, pos, rid, messages[pos])
        if maybe:  # answered earlier in this run, no longer in memory: read back from the checkpoint
            found = self.reuse.answers([rids[p] for p in maybe]) if self.reuse is not None else {}
            for pos in maybe:
                hit = found.get(rids[pos])
                if hit is not None:
                    on_copy(b, pos, *hit)
                elif rids[pos] in self.inflight:
                    self.inflight[rids[pos]].append((b, pos))
                    b.remaining += 1
                elif self.sending:
                    self._new(b, pos, rids[pos], messages[pos])
        self.open.append(b)
        self.open_rows += b.n

    def _new(self, b: Batch, pos: int, rid: str, messages: Any) -> None:
        self.inflight[rid] = [(b, pos)]
        self.queue.append((rid, messages))
        self.new_requests += 1
        b.remaining += 1

    def _answered_set(self) -> SeenHashes | None:
        """Hashes of the requests this run answered, when the checkpoint can give the answers back;
        None without a checkpoint or without dedupe (then nothing is ever copied across batches)."""
        if self.reuse is None or not self.dedupe:
            return None
        if self._fresh_answers:
            self._answered.add(hashes(self._fresh_answers))
            self._fresh_answers = []
        return self._answered

    def answer(self, res: Result, cost: float | None) -> list[tuple[Batch, int]]:
        """Hand ``res`` to every row waiting for it (the first is billed ``cost``, copies nothing)."""
        entries = self.inflight.pop(res.rid, None) or []
        copy_cost = 0.0 if cost is not None else None
        for i, (b, p) in enumerate(entries):
            b.fresh[p] = res
            b.costs[p] = cost if i == 0 else copy_cost
            b.remaining -= 1
        self._recent[res.rid] = (res, cost)
        if len(self._recent) > self._remember:
            self._recent.popitem(last=False)
        if self.reuse is not None and self.dedupe:
            self._fresh_answers.append(res.rid)
        return entries

    def ready(self) -> Iterator[Batch]:
        """The oldest batches whose every row has its answer, in input order (taken out of the window)."""
        while self.open and self.open[0].remaining == 0:
            yield self._take()

    def drain(self) -> Iterator[Batch]:
        """Every open batch, answered or not (the run is ending: unanswered rows are pending)."""
        self.sending = False
        self.inflight.clear()
        self.queue.clear()
        while self.open:
            yield self._take()

    def _take(self) -> Batch:
        b = self.open.popleft()
        self.open_rows -= b.n
        return b
