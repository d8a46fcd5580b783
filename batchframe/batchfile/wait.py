"""Phase B, wait: poll the live batches, merge each as it finishes, until none is left.

Every ``poll`` seconds (on DashScope from 60 s, backing off x1.5 up to 10 min while nothing changes,
as the vendor advises) each live batch is retrieved; a change of status or counts is recorded
(``seen``: what ``batchframe status`` shows without a network); a finished batch is merged
(``merge``), which may declare a retry chunk, submitted on the next turn. Progress is honest: rows
answered are rows merged; the server's counts, each batch's phase and the nearest ``expires_at``
are shown beside them, never as rows done.

How it ends: every chunk merged (None); Ctrl-C or SIGTERM ("interrupted": the batches go on, a rerun
re-attaches); a run-fatal answer ("fatal"); ``cancel`` ("cancelled"), ``deadline_s`` ("deadline") or
``file_fallback_s`` ("fallback"): the live batches are cancelled, finished lines collected when the
cancel settles, the rest left pending (for "fallback", to the Batch Chat run that follows, which
starts only once every batch has settled, so no row is ever in a batch and a chat call at once).
A deadline waits ``CANCEL_GRACE_S`` at most for the cancels to settle; then it stops, and the
batches still cancelling are collected by the next run.
"""

from __future__ import annotations

import logging
import time

from .context import JobContext
from .control import ControlError, Interrupted
from .merge import merge
from .record import TERMINAL, Chunk

log = logging.getLogger("batchframe")
MAX_POLL_S = 600.0
CANCEL_GRACE_S = 120.0


class Waiter:
    def __init__(self, ctx: JobContext, *, poll: float, backoff: bool, deadline: float | None = None,
                 fallback: float | None = None, cancel: bool = False) -> None:
        self.ctx, self.poll, self.backoff = ctx, poll, backoff
        self.deadline, self.fallback = deadline, fallback
        self.reason: str | None = "cancelled" if cancel else None
        self.settle_by: float | None = None

    def run(self) -> str | None:
        try:
            return self._run()
        except ControlError as exc:
            self.ctx.set_fatal(exc)
            return "fatal"
        except Interrupted:
            return "interrupted"

    def _run(self) -> str | None:
        ctx = self.ctx
        if self.reason == "cancelled":
            self._cancel_all()
        interval = self.poll
        while ctx.log.live():
            if ctx.stopped():
                return "interrupted"
            now = ctx.clock()
            if self.reason is None and self.deadline is not None and now >= self.deadline:
                self.reason, self.settle_by = "deadline", now + CANCEL_GRACE_S
                self._cancel_all()
            elif self.reason is None and self.fallback is not None and now >= self.fallback:
                self.reason, self.settle_by = "fallback", self.deadline
                log.warning("batchframe: file_fallback_s passed: cancelling the batches still queued; their "
                            "rows go through Batch Chat once the cancels settle")
                self._cancel_all()
            elif self.settle_by is not None and now >= self.settle_by:
                return "deadline" if self.reason == "fallback" else self.reason
            changed = self._turn()
            if ctx.fatal is not None:
                return "fatal"
            if not ctx.log.live():
                break
            wake = [t for t in (self.deadline, self.fallback, self.settle_by) if t is not None and t > now]
            pause = min([interval, *(t - ctx.clock() for t in wake)])
            if ctx.wait(pause):
                return "interrupted"
            interval = self.poll if changed or not self.backoff else min(interval * 1.5, MAX_POLL_S)
        return self.reason

    def _turn(self) -> bool:
        """One look at every live chunk; True when anything moved."""
        ctx, changed = self.ctx, False
        for chunk in ctx.log.live():
            if chunk.batch_id is None:
                if self.reason is not None:  # cancelling: never created, nothing ran
                    ctx.log.append({"e": "merged", "n": chunk.n, "status": "cancelled", "pending": chunk.rows})
                    if chunk.file_id and not ctx.file.keep_remote_files:
                        ctx.control.delete(chunk.file_id)
                        ctx.log.append({"e": "deleted", "n": chunk.n})
                else:
                    ctx.ensure(chunk)  # a retry chunk (or one a crash left): upload, create, record
                changed = True
                continue
            view = ctx.control.retrieve(chunk.batch_id)
            if self._seen(chunk, view):
                changed = True
            if view.status in TERMINAL:
                merge(ctx, chunk, view)
                changed = True
                if ctx.fatal is not None:
                    break
            elif self.reason is not None and not chunk.cancel:
                self._cancel(chunk)
        if ctx.progress is not None:
            ctx.progress.phase(describe(ctx.log.live(), self.reason))
        return changed

    def _seen(self, chunk: Chunk, view) -> bool:
        now = {"status": view.status, "total": view.total, "completed": view.completed, "failed": view.failed,
               "expires_at": view.expires_at, "output_file_id": view.output_file_id,
               "error_file_id": view.error_file_id}
        if all(getattr(chunk, k) == v for k, v in now.items()):
            return False
        self.ctx.log.append({"e": "seen", "n": chunk.n, **now})
        return True

    def _cancel_all(self) -> None:
        self.ctx.resubmit = False
        for chunk in self.ctx.log.live():
            if chunk.batch_id is not None and not chunk.cancel:
                self._cancel(chunk)

    def _cancel(self, chunk: Chunk) -> None:
        view = self.ctx.control.cancel(chunk.batch_id)
        self.ctx.log.append({"e": "cancel", "n": chunk.n})
        self._seen(chunk, view)


def describe(chunks: list[Chunk], reason: str | None = None, now: float | None = None) -> str:
    """"3 batches: 2 in_progress, 1 finalizing; server 1,234/5,000 lines; expires in 23h 5m"."""
    if not chunks:
        return "all batches merged"
    by: dict[str, int] = {}
    for c in chunks:
        by[c.status or "submitting"] = by.get(c.status or "submitting", 0) + 1
    lines = sum(c.lines for c in chunks)
    done = sum(c.completed + c.failed for c in chunks)
    text = (f"{len(chunks)} batch{'es' if len(chunks) > 1 else ''}: "
            + ", ".join(f"{n} {s}" for s, n in sorted(by.items(), key=lambda kv: -kv[1]))
            + f"; server {done:,}/{lines:,} lines")
    expiring = [c.expires_at for c in chunks if c.expires_at and c.status not in TERMINAL]
    if expiring:
        left = max(0, int(min(expiring) - (time.time() if now is None else now)))
        text += f"; expires in {left // 3600}h {left % 3600 // 60}m"
    if reason in ("cancelled", "deadline", "fallback"):
        text += f" ({'cancelling' if reason == 'cancelled' else reason + ': cancelling'})"
    return text
