"""The one run, behind every front door: source → rows → checkpoint reuse → executor → checkpoint
writer → columns → sink (see docs/architecture.md).

``Run(opts, source, sink).run()`` reads the source batch by batch (an in-memory frame is one batch;
files and Polars frames come in batches), turns each into requests (``rows.prepare``), lets the
checkpoint answer what it can (``checkpoint.reuse``), and feeds one lazy stream of requests to one
executor run, so concurrency never drains at a batch boundary. The next batch is read only when the
executor asks for work and the window has room (at most ``window_rows`` rows read and not yet
written); when it is full the stream yields ``HOLD``. Each result is redacted, written to the
checkpoint, then handed to its rows; the oldest batch with every answer goes to the sink, so output
is in input order.

How a run ends (``Outcome.stop``): ``None`` all done; ``"budget"`` / ``"deadline"``: dispatch
stopped, the calls in flight collected, the rest of the input read and written with status
``pending`` (rows the checkpoint holds still get their answers); ``"interrupted"`` (Ctrl-C, SIGTERM)
and ``"fatal"`` (bad key, ...): within seconds; a sink that keeps partial results (a frame) gets the
open rows as pending, a file sink gets nothing more (its output is not written) — every finished
answer is in the checkpoint either way, and the same call resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import time
from collections import Counter
from typing import Any, Callable, Iterator, Mapping

from ..engine.dispatcher import HOLD, EngineStats
from ..exceptions import ConfigError, RunFatalError
from ..records import OK, PENDING, Request, Result, RowBatch
from ..rows.prepare import Prepared, prepare
from ..rows.structured import before_run
from .budget import Budget
from .columns import result_columns
from .endpoints import serve
from .executor import open_engine
from .options import SIMULATED, RunOptions
from .pricing import CURRENCY
from .progress import Progress
from .redact import Redactor
from .repairs import Repairs
from .signals import StopSignals
from .summary import Outcome, Summary
from .window import Batch, Window

log = logging.getLogger("batchframe")


class Run:
    """One run. ``source``: ``batches()`` of ``RowBatch``, ``rows``, ``columns``, ``batch_rows``,
    ``empty()``, ``fingerprint()``. ``sink``: ``write(rows, columns)`` in input order, and ``partial``
    (keep a stopped run's open rows, as pending). ``on_engine(executor)`` sees the executor once it
    exists (Dask stops it when its job is cancelled). ``job``: Batch File's phases before the loop
    (``batchfile.job.FileJob``; made here for ``mode="file"``, or ``"auto"`` when it chooses so)."""

    def __init__(self, opts: RunOptions, source: Any, sink: Any, *, window_rows: int | None = None,
                 store_options: Mapping[str, Any] | None = None, meta: Mapping[str, Any] | None = None,
                 on_engine: Callable[[Any], None] | None = None, job: Any = None) -> None:
        self.opts, self.source, self.sink = opts, source, sink
        concurrency = min(opts.max_workers, opts.max_pending)
        self.window_rows = window_rows or max(4 * source.batch_rows, 2 * concurrency)
        self.store_options = dict(store_options or {})
        self.meta = dict(meta or {})
        self.on_engine = on_engine
        self.job = job
        self.redact = Redactor(opts.secrets)
        self.summary = Summary(rows=source.rows, unique_requests=0,
                               currency=CURRENCY if opts.prices else None)
        self.counts: Counter = Counter()
        self.errors: Counter = Counter()
        self.total_cost = 0.0
        self.written = 0
        self.store = self.reuse = self.window = self.progress = self.budget = None
        self.repairs = (Repairs(opts.structured, opts.max_repairs, opts.spec.hasher())
                        if opts.max_repairs else None)
        self._messages: dict[str, Any] = {}  # with repairs: each request's messages, until answered
        self._batches: Iterator[RowBatch] = iter(())
        self._exhausted = False

    # ---- the run -----------------------------------------------------------------------------
    def run(self) -> Outcome:
        started = time.monotonic()
        self._batches = iter(self.source.batches())
        first = self._read()  # bad input in the first batch fails here, before anything is started
        self._check(first[0].frame if first else self.source.empty().frame)
        if first is None:  # an empty input: checked all the same, its result columns, nothing started
            empty = self.source.empty()
            prepare(empty.frame, empty.keys, self.opts.rows, self.opts.spec)
            self._write(Batch(empty, {}))
            self._finish_summary(started)
            return Outcome(self.summary, complete=True)
        for note in self.opts.notes:
            log.warning("%s", note)
        if self.job is None and self.opts.file.mode != "chat":
            from ..batchfile.job import choose

            self.job = choose(self.opts, self.source)
        if self.opts.prices is None and not self.opts.prices_given:
            log.warning("batchframe: no price known for model %r at %s: cost is NA (pass prices={'input': "
                        "..., 'output': ...})", self.opts.spec.model, self.opts.spec.endpoint or self.opts.spec.base_url)
        with serve(self.opts) as opts:
            self.opts = opts
            clean = False
            try:
                self._open_store()
                if self.job is not None and not self.job.before(self):  # Batch File: submit, wait
                    outcome = self.job.detached(self)  # submitted only (submit(), --detach)
                else:
                    outcome = self._loop(first, started)
                clean = outcome.stop not in ("interrupted", "fatal")
            finally:  # after Ctrl-C or a crash: save, don't spend seconds merging; a run that failed
                if self.store is not None:  # before storing anything leaves no checkpoint behind
                    self.store.close(compact=clean and self.store_options.get("compact", True),
                                     discard_unused=not clean)
        return outcome

    def _check(self, frame: Any) -> None:
        """Checks that need the data, made on the first batch before anything is started."""
        opts = self.opts
        names = dict(opts.names)
        if opts.simulate is None:
            names.pop(SIMULATED, None)
        clash = [c for c in names.values() if c in self.source.columns]
        if clash:
            raise ConfigError(f"result column(s) {clash} already exist in the input; pass prefix= or suffix=")
        before_run(frame, opts.structured, names, dashscope=opts.dashscope or opts.simulate is not None,
                   **opts.rows.kwargs())

    def _open_store(self) -> None:
        opts = self.opts
        if opts.checkpoint is None:
            return
        from ..checkpoint.reuse import Reuse
        from ..checkpoint.store import CheckpointStore

        store_args = {k: v for k, v in self.store_options.items() if k != "compact"}
        meta = {**opts.meta(), "input": self.source.fingerprint(), **self.meta}
        self.store = CheckpointStore(opts.checkpoint, fsync=opts.fsync, meta=meta, **store_args).open()
        self.reuse = Reuse(self.store.path, opts.retry_failed, whole=self.source.batch_rows >= self.source.rows,
                           on_corrupt=self.store.quarantine)

    def _loop(self, first: tuple | None, started: float) -> Outcome:
        opts, summary = self.opts, self.summary
        self.window = Window(store=self.store, reuse=self.reuse, dedupe=opts.dedupe,
                             remember=max(self.source.batch_rows, 10_000))
        if self.job is not None:  # Batch File collects: rows not answered stay pending (unless falling back)
            self.window.sending = self.job.send
        self.progress = Progress(total=self.source.rows, initial=0, enabled=opts.progress,
                                 currency=summary.currency)
        if opts.max_cost is not None:
            self.budget = Budget(opts.max_cost, opts.prices, opts.spec.params, opts.spec.model)
        self._open(first)
        while not self.window.queue and not self._exhausted and self.window.open_rows < self.window_rows:
            self._open(self._read())  # look ahead for something to send (a resumed run may have nothing)
        if not self.window.queue and not self.window.inflight and self._exhausted:
            self.progress.close()  # every row answered already: no wire, no loop, nothing started
            summary.finish_engine(EngineStats(), None)
            return self._finish(Outcome(summary), started)
        engine, transport = open_engine(opts)
        try:
            if self.on_engine is not None:
                self.on_engine(engine)
            return self._finish(self._send(engine, started), started)
        finally:
            transport.close()  # idempotent: also when the loop never started

    def _send(self, engine: Any, started: float) -> Outcome:
        opts, summary = self.opts, self.summary

        def tick(stats: EngineStats) -> None:
            self.progress.tick(stats.limit, stats.in_flight)

        signals = StopSignals(lambda name: engine.stop("interrupted"))
        fatal: RunFatalError | None = None
        deadline = started + opts.deadline_s if opts.deadline_s else None
        results = engine.run(self._requests(engine), admit=self.budget.admit if self.budget else None,
                             on_tick=tick, deadline=deadline)
        try:
            with signals:
                for res in results:
                    self._on_result(res)
        except RunFatalError as exc:
            fatal = self.redact.error(exc)
            log.error("%s", fatal)
        finally:
            results.close()  # whatever ended the loop, the executor sends nothing more
            self.progress.close()
        summary.finish_engine(engine.stats, signals.received)
        stop = "fatal" if fatal is not None else summary.stop_reason
        return Outcome(summary, stop=stop, error=fatal)

    def _finish(self, outcome: Outcome, started: float) -> Outcome:
        """Every row to the sink (a stopped run: what a file sink must not get is not written)."""
        if self.job is not None:  # Batch File: its lines, cost and stop join the summary
            outcome = self.job.after(self, outcome)
        if outcome.stop not in ("interrupted", "fatal") or self.sink.partial:
            for b in self.window.drain():
                self._write(b)
            while not self._exhausted:  # the rest of the input: pending, or answered by the checkpoint
                self._open(self._read())
                for b in self.window.drain():
                    self._write(b)
            if self.written == 0:  # an empty input still gets its result columns / header
                self._write(Batch(self.source.empty(), {}))
            outcome.complete = True
        self._finish_summary(started)
        return outcome

    # ---- batches in ----------------------------------------------------------------------------
    def _read(self) -> tuple[RowBatch, Prepared] | None:
        rows = next(self._batches, None)
        if rows is None:
            self._exhausted = True
            return None
        with _no_gc():
            return rows, prepare(rows.frame, rows.keys, self.opts.rows, self.opts.spec, dedupe=self.opts.dedupe)

    def _open(self, item: tuple[RowBatch, Prepared] | None) -> None:
        if item is None:
            return
        rows, prepared = item
        b = Batch(rows, prepared.errors)
        with _no_gc():
            if self.reuse is not None:
                b.reused = self.reuse.lookup(rows.keys, prepared.rids)
            if b.reused is not None:
                self.summary.reused += b.reused.count
                # requests answered by the checkpoint (counted per batch: one repeated across batches
                # counts again; the requests this run sends are counted exactly)
                self.summary.unique_requests += len({prepared.rids[p] for p in b.reused.use.nonzero()[0].tolist()})
            self.summary.empty += len(prepared.errors)
            settled = (b.reused.count if b.reused is not None else 0) + len(prepared.errors)
            if settled:
                self.progress.settle(settled)
            if self.repairs is not None and b.reused is not None and self.window.sending:
                self._repair_stored(b, prepared)  # Batch File collecting: its repair rounds did that
            before = self.window.new_requests
            self.window.register(b, prepared, self._copy)
            self.summary.unique_requests += self.window.new_requests - before
        for ready in self.window.ready():
            self._write(ready)

    def _copy(self, b: Batch, pos: int, res: Result, cost: float | None) -> None:
        """A row whose request this run already answered: the same answer, billed once (cost 0)."""
        b.fresh[pos] = res
        b.costs[pos] = 0.0 if cost is not None else None
        if self.store is not None:
            self.store.write([b.rows.keys[pos]], res, b.costs[pos])
        self.progress.add(1, failed=res.status != OK, prompt=None, completion=None, reasoning=None, cost=None)

    def _repair_stored(self, b: Batch, prepared: Prepared) -> None:
        """Stored answers that still do not parse, with repairs left (``max_repairs`` raised, or a run
        stopped mid-repair): asked again from the stored answer instead of being reused as they are."""
        reused = b.reused
        for positions, res, error, cost in list(self.repairs.stored_broken(reused, prepared)):
            follow, turn = self.repairs.follow_up(res, prepared.messages[positions[0]], error, cost)
            for pos in positions:
                reused.use[pos] = False
                reused.count -= 1
                self.summary.reused -= 1
                b.remaining += 1
            self.window.inflight[follow] = [(b, pos) for pos in positions]
            self.window.queue.append((follow, turn))
            self.progress.settle(-len(positions))

    def _requests(self, engine: Any) -> Iterator[Request | None]:
        body, window = self.opts.spec.body, self.window
        while not engine.stopped:
            if window.queue:
                rid, messages = window.queue.popleft()
                if self.repairs is not None:
                    self._messages[rid] = messages
                yield Request(rid, body(messages))
            elif self._exhausted:
                if self.repairs is not None and window.inflight:
                    yield HOLD  # an answer still out may need a follow-up turn
                    continue
                return
            elif window.open_rows >= self.window_rows:
                yield HOLD
            else:
                self._open(self._read())

    # ---- results in, batches out -----------------------------------------------------------------
    def _on_result(self, res: Result) -> None:
        res = self.redact.result(res)
        prices = self.opts.prices
        cost = ((prices.cost(res.prompt_tokens, res.completion_tokens) if prices else None)
                if res.status == OK else (0.0 if prices else None))
        if self.budget is not None:
            self.budget.settle(res.rid, cost)
        messages = self._messages.pop(res.rid, None) if self.repairs is not None else None
        if self.repairs is not None and self.repairs.answers(res.rid):  # a follow-up: the original's answer
            follow = res.rid
            res, cost, messages = self.repairs.merge(res, cost)
            self.window.inflight[res.rid] = self.window.inflight.pop(follow, [])
        entries = self.window.inflight.get(res.rid) or []
        if self.store is not None and entries:  # durable before it counts; the cost column sums to
            keys = [b.rows.keys[p] for b, p in entries]  # what was spent: copies cost nothing
            self.store.write(keys[:1], res, cost)
            if len(keys) > 1:
                self.store.write(keys[1:], res, 0.0 if cost is not None else None)
        error = self.repairs.broken(res) if self.repairs is not None and messages is not None else None
        if error is not None and entries and not self.window.stopped_sending:  # ask again (stored above)
            follow, turn = self.repairs.follow_up(res, messages, error, cost)
            self.window.inflight[follow] = self.window.inflight.pop(res.rid)
            self.window.queue.append((follow, turn))
            return
        self.window.answer(res, cost)
        self.summary.add(res, len(entries), cost)
        self.progress.add(len(entries), failed=res.status != OK, prompt=res.prompt_tokens,
                          completion=res.completion_tokens, reasoning=res.reasoning_tokens, cost=cost)
        for b in self.window.ready():
            self._write(b)

    def _write(self, b: Batch) -> None:
        names = self.opts.names
        reused = b.reused
        cols = result_columns(b.rows.frame.index, b.fresh, b.errors, b.costs, names,
                              stored=reused.stored if reused is not None else None,
                              reused=reused.use if reused is not None else None,
                              simulated=self.opts.simulate is not None, outputs=self.opts.outputs,
                              n=self.opts.n, summary=self.opts.logprob_summary)
        status = cols[names["status"]]
        self.counts.update(status.value_counts().to_dict())
        self.errors.update(cols[names["error_code"]].dropna().value_counts().to_dict())
        self.total_cost += float(cols[names["cost"]].sum())
        self.written += b.n
        self.sink.write(b.rows, cols)

    def _finish_summary(self, started: float) -> None:
        s = self.summary
        s.ok, s.pending = int(self.counts.get(OK, 0)), int(self.counts.get(PENDING, 0))
        s.failed = sum(self.counts.values()) - s.ok - s.pending
        s.total_cost = self.total_cost if s.currency else None
        s.errors = Counter({str(k): int(v) for k, v in self.errors.items()})
        s.wall_s = time.monotonic() - started
        if self.repairs is not None:
            s.repairs, s.repaired = self.repairs.sent, self.repairs.fixed


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Building a million small dicts and lists triggers the cyclic collector over and over (3-4x the
    work, measured); none of them form cycles. Collection is on again while calls are in flight."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
