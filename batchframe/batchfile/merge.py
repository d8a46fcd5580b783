"""Merging a finished batch into the checkpoint: its lines downloaded (streamed), judged one by one,
each answer written under its rows' real keys as the run writes them (first key billed, copies cost
nothing, redacted first), the retryable lines resubmitted as a new chunk, the remote files deleted.

A line's outcome, as in Batch Chat: an answer → ``ok``; a permanent error (moderation, a prompt too
long) → the row fails; a run-fatal one (bad key, unknown model, no credit) → the job stops after
saving, the row stays pending; a retryable one (5xx, 429, ``batch_expired``, a line in neither file)
→ a new batch, up to ``max_attempts`` (then failed, "gave up after N attempts"). While cancelling,
at a deadline or falling back, retryable lines stay pending. The same identical-4xx rule as the
engine's: when the first lines of a job all fail with one unexplained 4xx, the job stops.

Merging is idempotent: written rows are written again if a crash comes before the ``merged`` event
(the newest write wins, the same answer), and the retry chunk is declared in that same event.
"""

from __future__ import annotations

import logging
import os

import orjson

from ..engine.taxonomy import Action
from ..exceptions import RunFatalError
from ..records import GAVE_UP, OK, Reply, Result
from .chunks import OpenChunk, chunk_lines, group_of, read_chains, read_map, write_chains
from .context import JobContext
from .control import BatchView, ControlError
from .lines import CANCELLED, MISSING, describe, judge, verdict_of
from .record import Chunk, chunk_files, chunk_path
from .repair import chain_start

log = logging.getLogger("batchframe")
SUSPECT_LIMIT = 3
HINT_SUSPECT = ("The first requests all failed with this same error: check the request parameters (model, "
                "response_format, max_tokens, extra_body).")


class Merge:
    def __init__(self, ctx: JobContext, chunk: Chunk, batch: BatchView) -> None:
        self.ctx, self.chunk, self.batch = ctx, chunk, batch
        self.keys = read_map(ctx.dir, chunk.n)
        self.chains = read_chains(ctx.dir, chunk.n) if chunk.repair else {}  # follow-up rid -> what it repairs
        self.seen: set[str] = set()
        self.retry: set[str] = set()
        self.counts = {"ok": 0, "failed": 0, "pending": 0}
        self.spent = 0.0
        self._suspects: dict[tuple, int] = {}

    def run(self) -> None:
        ctx, batch = self.ctx, self.batch
        if batch.status == "failed":  # validation refused the whole file: every line would fail so
            first = batch.errors[0] if batch.errors else {}
            ctx.set_fatal(RunFatalError(
                f"run stopped: batch {batch.id} failed validation: {first.get('code')}: {first.get('message')}"
                + (f" (line {first['line']})" if first.get("line") else ""), code=first.get("code"),
                provider_message=first.get("message")))
        for file_id, kind in ((batch.output_file_id, "output"), (batch.error_file_id, "error")):
            if file_id is not None:
                self._download(file_id, kind)
        cancelled = batch.status == "cancelled"
        for rid in self.keys:
            if rid not in self.seen:
                if cancelled or batch.status == "failed":
                    self.counts["pending"] += 1
                else:
                    self._failed(rid, MISSING)
        ctx.budget.settle(self.chunk.reserve, self.spent)
        resubmit = self._resubmit() if self.retry else None
        ctx.log.append({"e": "merged", "n": self.chunk.n, "status": batch.status, **self.counts,
                        "retry": len(self.retry), "resubmit": resubmit})
        self._clean()

    def _download(self, file_id: str, kind: str) -> None:
        try:
            for raw in self.ctx.control.lines(file_id):
                self._line(raw)
        except ControlError as exc:
            if kind != "error" or exc.status not in (400, 403, 404):
                raise
            # one page says only output files download: its lines then count as missing (retried)
            log.warning("batchframe: the error file %s of batch %s cannot be downloaded (%s); its lines "
                        "are retried", file_id, self.batch.id, exc.status)

    def _line(self, raw: bytes) -> None:
        rid, reply = judge(raw)
        if rid is None or rid not in self.keys or rid in self.seen:
            return  # not one of this chunk's lines, or a repeat
        self.seen.add(rid)
        if reply.ok:
            self.ctx.stats.ok_lines += 1
            self._write(Result.from_reply(rid, reply, self.chunk.attempt))
        else:
            self._failed(rid, reply)

    def _failed(self, rid: str, reply: Reply) -> None:
        ctx, attempt = self.ctx, self.chunk.attempt
        verdict = verdict_of(reply)
        if verdict.code == CANCELLED:
            self.counts["pending"] += 1
        elif verdict.action is Action.RETRY:
            if attempt >= ctx.max_attempts:
                self._write(Result.failure(rid, f"{GAVE_UP} {attempt} attempts: {describe(reply)}",
                                           verdict.code, attempt, reply))
            elif ctx.resubmit and ctx.fatal is None:
                self.retry.add(rid)
            else:
                self.counts["pending"] += 1
        elif verdict.action is Action.STOP_RUN:
            self.counts["pending"] += 1
            self._fatal(reply, verdict.hint)
        else:
            if verdict.config_suspect and ctx.stats.ok_lines == 0:
                key = (reply.status, reply.code, reply.message)
                self._suspects[key] = self._suspects.get(key, 0) + 1
                if self._suspects[key] >= SUSPECT_LIMIT:
                    self._fatal(reply, HINT_SUSPECT)
            self._write(Result.failure(rid, describe(reply), verdict.code, attempt, reply))

    def _fatal(self, reply: Reply, hint: str | None) -> None:
        code = reply.code or f"http_{reply.status}"
        msg = f"run stopped: the server answered {reply.status} {code}: {reply.message}"
        self.ctx.set_fatal(RunFatalError(msg + (f". {hint}" if hint else ""), status=reply.status, code=code,
                                         provider_message=reply.message, hint=hint))

    def _write(self, res: Result) -> None:
        """As the run writes an answer: durable before it counts; the first key billed."""
        ctx = self.ctx
        res = ctx.redact.result(res)
        prices = ctx.prices
        ok = res.status == OK
        cost = (prices.cost(res.prompt_tokens, res.completion_tokens) if prices else None) if ok \
            else (0.0 if prices else None)
        keys = self.keys[res.rid]
        chain = self.chains.get(res.rid)
        answer, billed = res, cost
        if chain is not None:
            before, before_cost = chain_start(chain)
            answer, billed = ctx.repairs.join(before, res, before_cost, cost)
        ctx.store.write(keys[:1], answer, billed)  # a follow-up's: under the original request, chain totals
        if len(keys) > 1:
            ctx.store.write(keys[1:], answer, 0.0 if billed is not None else None)
        self.counts["ok" if ok else "failed"] += 1
        self.spent += cost or 0.0
        rows = len(keys) if chain is None else 0  # a repaired row was counted when first answered
        ctx.stats.rows += rows
        ctx.summary.add(res, len(keys), cost)
        if ctx.progress is not None:
            ctx.progress.add(rows, failed=not ok and chain is None, prompt=res.prompt_tokens,
                             completion=res.completion_tokens, reasoning=res.reasoning_tokens, cost=cost)

    def _resubmit(self) -> dict | None:
        """The retryable lines as a new chunk (its ``chunk`` event, declared by the ``merged`` one)."""
        ctx, parent = self.ctx, self.chunk
        path = chunk_path(ctx.dir, parent.n)
        if not os.path.exists(path):
            log.warning("batchframe: the input of chunk %d is gone: its %d retryable rows stay pending",
                        parent.n, len(self.retry))
            self.counts["pending"] += len(self.retry)
            return None
        new = OpenChunk(ctx.dir, ctx.log.next_n(), attempt=parent.attempt + 1, parent=parent.n,
                        repair=parent.repair)
        for rid, raw in chunk_lines(path):
            if rid not in self.retry:
                continue
            body = orjson.loads(raw)["body"]
            worst = ctx.budget.worst(body)
            if not ctx.budget.fits(new.reserve + worst):
                self.counts["pending"] += 1
                ctx.budget_hit = True
                continue
            new.add(rid, self.keys[rid], raw, worst, group_of(body))
        if not new.lines:
            new.discard()
            return None
        if self.chains:  # a repair chunk's retries keep what they repair
            write_chains(ctx.dir, new.n, {rid: self.chains[rid] for rid in new.keys})
        event = new.close()
        ctx.budget.reserve(new.reserve)
        ctx.stats.lines += new.lines
        ctx.stats.resubmitted += new.lines
        return event

    def _clean(self) -> None:
        """Remote files deleted once merged (unless ``keep_remote_files``), then the local ones."""
        ctx, chunk, batch = self.ctx, self.chunk, self.batch
        if not ctx.file.keep_remote_files:
            try:
                for file_id in (chunk.file_id, batch.output_file_id, batch.error_file_id):
                    if file_id:
                        ctx.control.delete(file_id)
                ctx.log.append({"e": "deleted", "n": chunk.n})
            except ControlError as exc:
                log.warning("batchframe: could not delete the remote files of batch %s (%s); the next "
                            "run tries again", batch.id, exc)
        for path in chunk_files(ctx.dir, chunk.n):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass


def merge(ctx: JobContext, chunk: Chunk, batch: BatchView) -> None:
    Merge(ctx, chunk, batch).run()
