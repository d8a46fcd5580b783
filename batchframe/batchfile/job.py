"""The job inside a run: ``FileJob`` is what ``pipeline.run.Run`` calls when ``mode`` is "file".

``Run.run()`` opens the checkpoint as always, then hands over to ``FileJob.before(run)``: phase A
(submit: ``submit.Submitter``) and phase B (wait: ``wait.Waiter``), both writing through the run's
own store, then with ``max_repairs`` the repair rounds (``repair.repair_rounds``: follow-up turns as
lines of new batches, waited for like the others; only in phase "complete", after a clean wait);
then the run's ordinary loop is phase C (collect): the same source with nothing left to send
(``FileJob.send`` False), every answered row reused from the checkpoint, so the columns,
dtypes, cost, status and output files are those of Batch Chat, and rows not answered (cancelled,
a deadline, a detach) are ``pending``. After ``file_fallback_s`` the loop sends again: what is left
goes through Batch Chat. ``FileJob.after`` puts the job's counts and stop into the summary.

Phases by door: ``complete(mode="file")`` and ``Job.wait()`` run A, B, C (A submits nothing when
the same call re-attaches); ``submit()`` runs A only (``before`` returns False: no loop);
``Job.cancel()`` cancels, then B collects what finished, then C.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any

from ..engine.wire import is_dashscope
from ..pipeline.repairs import Repairs
from .context import FileBudget, JobContext
from .control import Control, ControlError, Interrupted, make_client
from .options import DAY_S, file_base_url, poll_interval
from .progress import FileProgress
from .record import JobLog
from .repair import repair_rounds
from .submit import Submitter
from .wait import Waiter

log = logging.getLogger("batchframe")


def choose(opts: Any, source: Any) -> "FileJob | None":
    """The job for ``mode="file"``; for ``mode="auto"`` the choice, said once with its reason."""
    if opts.file.mode == "file":
        return FileJob()
    rows, limit = source.rows, opts.file.auto_file_rows
    use_file = False
    if opts.checkpoint is None:
        why = "no checkpoint= to record the batches in"
    elif opts.deadline_s is not None and opts.deadline_s < DAY_S:
        why = f"deadline_s={opts.deadline_s:g} is under a day (a batch may take its whole completion window)"
    elif rows < limit:
        why = f"{rows:,} rows, under auto_file_rows={limit:,}"
    else:
        use_file, why = True, f"{rows:,} rows, at least auto_file_rows={limit:,}"
    log.warning("batchframe: mode='auto' chose %s: %s", "Batch File (mode='file')" if use_file
                else "Batch Chat (mode='chat')", why)
    return FileJob() if use_file else None


def open_context(store: Any, opts: Any, summary: Any, redact: Any, progress: Any = None,
                 repairs: Any = None) -> JobContext:
    base = file_base_url(opts.spec.base_url)
    joblog = JobLog(store.path).open(endpoint=base, model=opts.spec.model, window=opts.file.completion_window)
    stop = threading.Event()
    client = getattr(opts, "client", None)
    control = Control(make_client(base, opts.api_key, opts.timeout, client), timeout=opts.timeout,
                      retry=opts.retry, dashscope=is_dashscope(base), redact=redact, wait=stop.wait,
                      owned=client is None)
    budget = FileBudget(opts.max_cost, opts.prices, opts.spec.params, opts.spec.model,
                        live_reserve=sum(c.reserve for c in joblog.live()))
    ctx = JobContext(store=store, log=joblog, control=control, file=opts.file, prices=opts.prices,
                     max_attempts=opts.retry.max_attempts, redact=redact, budget=budget, summary=summary,
                     progress=progress, window=opts.file.completion_window, stop_event=stop,
                     repairs=repairs or Repairs(opts.structured, 0, opts.spec.hasher()))
    _delete_leftovers(ctx)
    return ctx


def _delete_leftovers(ctx: JobContext) -> None:
    """Remote files of chunks merged by a run that died before deleting them."""
    if ctx.file.keep_remote_files:
        return
    for chunk in ctx.log.chunks.values():
        if chunk.live or chunk.deleted or not chunk.file_id:
            continue
        try:
            for file_id in (chunk.file_id, chunk.output_file_id, chunk.error_file_id):
                if file_id:
                    ctx.control.delete(file_id)
            ctx.log.append({"e": "deleted", "n": chunk.n})
        except (ControlError, Interrupted) as exc:
            log.warning("batchframe: could not delete the remote files of chunk %d (%s)", chunk.n, exc)
            return


class FileJob:
    """The Batch File phases of one run (see the module doc). ``phase``: "complete", "submit",
    "cancel"."""

    def __init__(self, phase: str = "complete") -> None:
        self.phase = phase
        self.send = True
        self.stop: str | None = None
        self.ctx: JobContext | None = None

    def before(self, run: Any) -> bool:
        from ..checkpoint.reuse import Reuse
        from ..pipeline.signals import StopSignals

        opts = run.opts
        started = time.monotonic()
        deadline = started + opts.deadline_s if opts.deadline_s else None
        fallback = started + opts.file.fallback_s if opts.file.fallback_s else None
        progress = FileProgress(total=run.source.rows, enabled=opts.progress, currency=run.summary.currency)
        ctx = self.ctx = open_context(run.store, opts, run.summary, run.redact, progress, run.repairs)
        signals = StopSignals(lambda name: ctx.stop_event.set())
        stop = None
        try:
            with signals:
                try:
                    if self.phase != "cancel":
                        stop = Submitter(ctx, opts, run.source, run.reuse, deadline=deadline).run()
                    if self.phase != "submit" and stop not in ("interrupted", "fatal"):
                        poll, backoff = poll_interval(opts.file, file_base_url(opts.spec.base_url))

                        def wait() -> str | None:
                            return Waiter(ctx, poll=poll, backoff=backoff, deadline=deadline, fallback=fallback,
                                          cancel=self.phase == "cancel").run()

                        stop = wait() or stop
                        if self.phase == "complete" and stop is None and run.repairs is not None:
                            stop = repair_rounds(ctx, opts, run.source, run.repairs, whole=run.reuse.whole,
                                                 wait=wait, deadline=deadline)
                except ControlError as exc:
                    ctx.set_fatal(exc)
                except Interrupted:
                    stop = "interrupted"
        finally:
            progress.close()
            ctx.control.close()
            ctx.log.close()
        if signals.received:
            stop = "interrupted"
        if ctx.fatal is not None:
            stop = "fatal"
        if stop is None and ctx.budget_hit:
            stop = "budget"
        self.stop = stop
        if stop == "interrupted":
            log.warning("batchframe: stopped waiting; the batches go on on the server (they are recorded in "
                        "%s): the same call again collects them, job.cancel() or `batchframe cancel` cancels them",
                        opts.checkpoint)
        if self.phase == "submit":
            return False
        self.send = stop == "fallback"
        # what the job stored is the answer, failures too (a row whose retries ran out is failed, not pending)
        run.reuse = Reuse(run.store.path, None, whole=run.reuse.whole, on_corrupt=run.store.quarantine)
        if not self.send:  # the collecting pass sends nothing: no second bar
            run.opts = dataclasses.replace(run.opts, progress=False)
        elif opts.max_cost is not None:  # falling back: Batch Chat gets what the batches left of max_cost
            run.opts = dataclasses.replace(run.opts, max_cost=max(0.0, opts.max_cost - ctx.budget.spent))
        return True

    def after(self, run: Any, outcome: Any) -> Any:
        """The job's part of the summary (after the loop's own counts), and its stop or error."""
        s, stats = run.summary, self.ctx.stats
        s.sent += stats.lines
        s.retries += stats.resubmitted
        s.reused = max(0, s.reused - stats.rows)
        if outcome.error is None and self.ctx.fatal is not None:
            outcome.error, outcome.stop = self.ctx.fatal, "fatal"
        elif self.stop not in (None, "fallback", "fatal") and outcome.stop is None:
            outcome.stop = s.stop_reason = self.stop
        return outcome

    def detached(self, run: Any) -> Any:
        """The outcome of a run that only submitted (``submit()``, ``--detach``)."""
        from ..pipeline.summary import Outcome

        s, stats = run.summary, self.ctx.stats
        s.sent, s.stop_reason = stats.lines, self.stop
        s.pending = s.rows
        return Outcome(s, stop="fatal" if self.ctx.fatal is not None else (self.stop or "detached"),
                       error=self.ctx.fatal)
