"""The streaming run behind ``batchframe run``: any number of rows, memory flat in the row count.

One ``Engine.run`` is fed by one lazy generator of requests spanning every input batch, so
concurrency never drains at a batch boundary. The generator opens the next input batch only when the
engine asks for work and the *window* has room: at most ``window_rows`` rows may sit in open batches
(read, not yet written). An open batch keeps its rows, its keys and one slot per row for the result;
rows the checkpoint already answered get their stored columns when the batch opens (``_stream_reuse``)
and are not sent; identical requests among open batches are sent once (a request already in flight
gets the new rows attached). Each answer goes to the checkpoint first, then into its rows; when the
oldest open batch has every answer it is written (input columns + ``complete()``'s result columns)
and dropped, so the output is in input order.

The window must be able to say "nothing now" while the oldest batch waits for a slow call: when it
is full the generator yields ``HOLD`` and the engine asks again after its next completion.

Outcomes (``Outcome.stop``): ``None`` all input done; ``"budget"`` / ``"deadline"``: dispatch stopped,
the calls in flight are collected, the rest of the input is read and written with status
``pending`` (rows the checkpoint holds still get their answers), so the output is complete;
``"interrupted"`` (Ctrl-C, SIGTERM) and ``"fatal"`` (bad key, ...): within seconds, with the output
file not written (an older one is left as it was) and every finished answer in the checkpoint: the
same command resumes.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter, OrderedDict, deque
from typing import Any, Iterator, Mapping

from ..engine.dispatcher import HOLD, Engine, EngineStats
from .signals import StopSignals
from ..io.sources import Source
from ..io.sinks import TableWriter
from .options import RunOptions
from .pricing import CURRENCY, resolve_prices
from .progress import Progress
from ..records import OK, PENDING, Reply, Request, Result
from .run import open_engine
from .batch import Batch, Rows, output, prepare
from .parsed import StreamParse
from ..checkpoint.lookup import SeenHashes, fetch_answers, hashes
from .summary import Summary
from ..exceptions import RunFatalError


@dataclasses.dataclass
class Outcome:
    summary: Summary
    stop: str | None = None           # None, "budget", "deadline", "interrupted", "fatal"
    error: RunFatalError | None = None
    written: bool = False


class StreamRun:
    def __init__(self, source: Source, writer: TableWriter, opts: RunOptions, rows: Rows,
                 names: Mapping[str, str], *, parse: StreamParse | None = None, store: Any = None,
                 lookup: Any = None, batch_rows: int = 10_000, window_rows: int | None = None) -> None:
        self.source, self.writer, self.opts, self.rows, self.names = source, writer, opts, rows, names
        self.parse, self.store, self.lookup = parse, store, lookup
        self.batch_rows = batch_rows
        self.window = window_rows or max(4 * batch_rows, 2 * min(opts.max_workers, opts.max_pending))
        self.prices = resolve_prices(opts.spec.model, opts.prices, use_table=opts.dashscope or opts.simulate)
        self.summary = Summary(rows=source.rows, unique_requests=0,
                               currency=CURRENCY if self.prices else None)
        self.counts: Counter = Counter()
        self.errors: Counter = Counter()
        self.total_cost = 0.0
        self._input: Iterator = iter(source.batches(batch_rows))
        self._next_start = 0
        self.exhausted = False
        self.sending = True
        self.open: deque[Batch] = deque()
        self.open_rows = 0
        self.inflight: dict[str, list[tuple[Batch, int]]] = {}
        self.queue: deque[tuple[str, list]] = deque()
        self.recent: OrderedDict[str, tuple[Result, float | None]] = OrderedDict()  # the last answers
        self.answered = SeenHashes()   # requests this run answered (8 bytes each)
        self._recently_answered: list[str] = []
        self.ok = 0
        self.engine: Engine | None = None
        self.progress: Progress | None = None

    # ---- batches in ------------------------------------------------------------------------
    def _open_next(self) -> None:
        table = next(self._input, None)
        if table is None:
            self.exhausted = True
            return
        b, messages, rids = prepare(table, self._next_start, self.rows)
        self._next_start += b.n
        reused = self.lookup.lookup(b.keys, rids) if self.lookup else None
        taken: set[int] = set()
        if reused is not None:
            b.stored_pos, b.stored = reused
            taken = set(b.stored_pos)
            self.summary.reused += len(taken)
            # requests answered by the checkpoint (counted per batch: one repeated across batches
            # counts again; the requests this run sends are counted exactly)
            self.summary.unique_requests += len({rids[p] for p in taken})
        self.summary.empty += len(b.row_errors)
        if self.progress is not None and (taken or b.row_errors):
            self.progress.add(len(taken) + len(b.row_errors), failed=False, prompt=None, completion=None,
                              reasoning=None, cost=None)
        self._register(b, messages, rids, taken)
        self.open.append(b)
        self.open_rows += b.n
        self._write_ready()

    def _register(self, b: Batch, messages: list, rids: list, taken: set[int]) -> None:
        """Each row to send: attached to the same request in flight, answered by this run's earlier
        answer to the same request (a copy), or a new request (left pending once sending stopped)."""
        maybe: list[int] = []
        answered = self._answered()
        todo = [p for p, r in enumerate(rids) if r is not None and p not in taken]
        earlier = answered.contains(hashes([rids[p] for p in todo])) if answered is not None else None
        for i, pos in enumerate(todo):
            rid = rids[pos]
            entry = self.inflight.get(rid)
            if entry is not None:
                entry.append((b, pos))
                b.remaining += 1
            elif rid in self.recent:
                self._copy(b, pos, *self.recent[rid])
            elif earlier is not None and earlier[i]:
                maybe.append(pos)
            elif self.sending:
                self._new(b, pos, rid, messages[pos])
        if maybe:  # answered earlier in this run, no longer in memory: read back from the checkpoint
            found = fetch_answers(self.store.path, [rids[p] for p in maybe]) if self.store else {}
            for pos in maybe:
                hit = found.get(rids[pos])
                if hit is not None:
                    self._copy(b, pos, *hit)
                elif rids[pos] in self.inflight:
                    self.inflight[rids[pos]].append((b, pos))
                    b.remaining += 1
                elif self.sending:
                    self._new(b, pos, rids[pos], messages[pos])

    def _new(self, b: Batch, pos: int, rid: str, messages: list) -> None:
        self.inflight[rid] = [(b, pos)]
        self.queue.append((rid, messages))
        self.summary.unique_requests += 1
        b.remaining += 1

    def _copy(self, b: Batch, pos: int, res: Result, cost: float | None) -> None:
        """A row whose request this run already answered: the same answer, billed once (cost 0)."""
        b.fresh[pos] = res
        b.costs[pos] = 0.0 if cost is not None else None
        if self.store is not None:
            self.store.write([b.keys[pos]], res, b.costs[pos])
        self.progress.add(1, failed=res.status != OK, prompt=None, completion=None, reasoning=None, cost=None)

    def _answered(self) -> SeenHashes | None:
        """Hashes of the requests this run answered (8 bytes each), when the checkpoint can give the
        answers back; ``None`` without a checkpoint or with --no-dedupe."""
        if self.store is None or not self.rows.dedupe:
            return None
        if self._recently_answered:
            self.answered.add(hashes(self._recently_answered))
            self._recently_answered = []
        return self.answered

    def _requests(self) -> Iterator[Request]:
        body = self.opts.spec.body
        while not self.engine.stopped:
            if self.queue:
                rid, messages = self.queue.popleft()
                yield Request(rid, body(messages))
            elif self.exhausted:
                return
            elif self.open_rows >= self.window:
                yield HOLD
            else:
                self._open_next()

    # ---- results in, batches out -----------------------------------------------------------
    def _on_result(self, res: Result) -> None:
        entries = self.inflight.pop(res.rid, None)
        if entries is None:  # pragma: no cover - every request is registered before it is sent
            return
        prices = self.prices
        cost = ((prices.cost(res.prompt_tokens, res.completion_tokens) if prices else None)
                if res.status == OK else (0.0 if prices else None))
        copy_cost = 0.0 if cost is not None else None  # billed once: copies of one request cost nothing
        if self.store is not None:  # the checkpoint's cost column sums to what was spent
            self.store.write([entries[0][0].keys[entries[0][1]]], res, cost)
            if len(entries) > 1:
                self.store.write([b.keys[p] for b, p in entries[1:]], res, copy_cost)
        for i, (b, p) in enumerate(entries):
            b.fresh[p] = res
            b.costs[p] = cost if i == 0 else copy_cost
            b.remaining -= 1
        if res.status == OK:
            self.ok += 1
        self.recent[res.rid] = (res, cost)
        if len(self.recent) > self.batch_rows:
            self.recent.popitem(last=False)
        if self.store is not None and self.rows.dedupe:
            self._recently_answered.append(res.rid)
        self.summary.add(res, len(entries), cost)
        self.progress.add(len(entries), failed=res.status != OK, prompt=res.prompt_tokens,
                          completion=res.completion_tokens, reasoning=res.reasoning_tokens, cost=cost)
        self._write_ready()

    def _write_ready(self) -> None:
        while self.open and self.open[0].remaining == 0:
            self._write(self.open.popleft())

    def _write(self, b: Batch) -> None:
        out = output(b, self.names)
        status = out[self.names["status"]]
        self.counts.update(status.value_counts().to_dict())
        self.errors.update(out[self.names["error_code"]].dropna().value_counts().to_dict())
        self.total_cost += float(out[self.names["cost"]].sum())
        if self.parse is not None:
            if self.parse.two_pass:
                self.parse.observe(out)
            else:
                out = self.parse.add(out)
        self.writer.write(b.table, out)
        self.open_rows -= b.n

    # ---- the run ---------------------------------------------------------------------------
    def _admit(self, request: Request) -> bool:
        engine, opts = self.engine, self.opts
        if opts.max_cost is not None and self.prices is not None:
            per_request = self.summary.cost / self.ok if self.ok else 0.0
            if self.summary.cost + (engine.stats.in_flight + 1) * per_request > opts.max_cost:
                return False
        return True

    def run(self) -> Outcome:
        opts, started = self.opts, time.monotonic()
        engine, transport = open_engine(opts)
        self.engine = engine
        self.progress = Progress(total=self.source.rows, initial=0, enabled=opts.progress,
                                 currency=self.summary.currency)
        deadline = started + opts.deadline_s if opts.deadline_s else None

        def tick(stats: EngineStats) -> None:
            self.progress.tick(stats.limit, stats.in_flight)

        signals = StopSignals(lambda name: engine.stop("interrupted"))
        fatal: RunFatalError | None = None
        results = engine.run(self._requests(), admit=self._admit, on_tick=tick, deadline=deadline)
        try:
            with signals:
                for res in results:
                    self._on_result(res)
        except RunFatalError as exc:
            fatal = exc
        finally:
            results.close()  # whatever ended the loop, the engine sends nothing more
            self.progress.close()
            transport.close()  # idempotent: also when the loop above never started
        self.summary.finish_engine(engine.stats, signals.received)
        stop = "fatal" if fatal is not None else self.summary.stop_reason
        outcome = Outcome(self.summary, stop=stop, error=fatal)
        if stop not in ("interrupted", "fatal"):
            self._finish_output()
            outcome.written = True
        self._finish_summary(started)
        return outcome

    def _finish_output(self) -> None:
        """Write what is left: open batches (unanswered rows pending), then the rest of the input."""
        self.sending = False
        self.inflight.clear()
        self.queue.clear()
        while self.open:
            self._write(self.open.popleft())
        while not self.exhausted:
            self._open_next()
        if self.writer.rows == 0:  # an empty input still gets its header / schema
            empty = self.source.schema.empty_table()
            b, _, _ = prepare(empty, 0, self.rows)
            self._write(b)

    def _finish_summary(self, started: float) -> None:
        s = self.summary
        s.ok, s.pending = int(self.counts.get(OK, 0)), int(self.counts.get(PENDING, 0))
        s.failed = sum(self.counts.values()) - s.ok - s.pending
        s.total_cost = self.total_cost if s.currency else None
        s.errors = Counter({str(k): int(v) for k, v in self.errors.items()})
        s.wall_s = time.monotonic() - started
