"""Repair rounds of a Batch File job (``max_repairs=N``): the follow-up turns go out as lines of new
batches, never through Batch Chat.

After every chunk is merged, the source is streamed again with the run's ``prepare`` and a fresh
``Reuse`` over the store; each stored answer that ``Repairs`` finds broken (the decision Batch Chat
makes, ``Repairs.stored_broken``) gets its follow-up turn (``Repairs.turn``) as a line: one line per
distinct follow-up request, mapped to the original rows' keys, its worst case reserved by the
budget like any line. A repair chunk (``repair`` in its ``chunk`` event: its round) has a sidecar,
``chunk-<n>.chains.json`` (follow-up rid -> the answer it repairs, with its cost), written before
the chunk is recorded, so ``Merge`` writes the follow-up's answer under the ORIGINAL request with
the chain's totals (``Repairs.join``), in this run or in the one that re-attaches after a crash; a
retry chunk of a repair chunk carries its part of the sidecar. The job then waits again; a round
follows while answers are still broken, up to ``max_repairs`` rounds.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from ..records import OK, Result
from ..rows.prepare import prepare
from .chunks import OpenChunk, write_chains
from .submit import Submitter

log = logging.getLogger("batchframe")
_FIELDS = ("rid", "response", "finish_reason", "prompt_tokens", "completion_tokens", "total_tokens",
           "reasoning_tokens", "reasoning_content", "request_id", "latency_s", "attempts", "repairs")


def chain_record(res: Result, cost: float | None) -> dict:
    """What a sidecar keeps of the answer a follow-up repairs (``res``: as ``stored_result`` reads it)."""
    return {"cost": cost, **{f: getattr(res, f) for f in _FIELDS}}


def chain_start(record: dict) -> tuple[Result, float | None]:
    """The answer a follow-up repairs and its cost, from its sidecar record."""
    return Result(status=OK, **{f: record.get(f) for f in _FIELDS}), record.get("cost")


class RepairRound(Submitter):
    """One round: the follow-up lines of every broken stored answer, in chunks submitted as they close.
    ``run()`` gives the stop reason (None, "budget", "deadline", "interrupted")."""

    def __init__(self, ctx: Any, opts: Any, source: Any, reuse: Any, repairs: Any, round_n: int, *,
                 deadline: float | None) -> None:
        super().__init__(ctx, opts, source, reuse, deadline=deadline)
        self.repairs, self.round = repairs, round_n
        self.placed: dict[str, int] = {}      # follow-up rid -> the chunk of its line (this round)
        self.chains: dict[str, dict] = {}     # the open chunk's sidecar

    def run(self) -> str | None:
        return self._stream()  # nothing live: the job waited for every chunk before this round

    def _batch(self, rows: Any) -> None:
        opts = self.opts
        prepared = prepare(rows.frame, rows.keys, opts.rows, opts.spec, dedupe=opts.dedupe)
        reused = self.reuse.lookup(rows.keys, prepared.rids)
        if reused is None:
            return
        extra: dict[int, dict[str, list[str]]] = defaultdict(dict)
        for positions, res, error, cost in list(self.repairs.stored_broken(reused, prepared)):
            follow, turn = self.repairs.turn(res, prepared.messages[positions[0]], error)
            keys = [rows.keys[p] for p in positions]
            if self.open is not None and follow in self.open.keys:
                self.open.keys[follow].extend(keys)
            elif follow in self.placed:
                extra[self.placed[follow]].setdefault(follow, []).extend(keys)
            elif not self.full and self._line(follow, keys, turn):
                self.placed[follow] = self.open.n
                self.chains[follow] = chain_record(res, cost)
                self.repairs.sent += 1
        self._more_keys(extra)

    def _too_large(self, rid: str, keys: list[str], why: str) -> None:
        """The stored answer stands (with its parse error): a failure here would lose a paid answer."""
        log.warning("batchframe: a repair turn was not sent (%s); the answer keeps its parse_error", why)

    def _new_chunk(self) -> OpenChunk:
        return OpenChunk(self.ctx.dir, self.ctx.log.next_n(), repair=self.round)

    def _closing(self, chunk: OpenChunk) -> None:
        write_chains(self.ctx.dir, chunk.n, {rid: self.chains[rid] for rid in chunk.keys})
        self.chains = {}

    def _discard_open(self) -> None:
        super()._discard_open()
        self.chains = {}


def repair_rounds(ctx: Any, opts: Any, source: Any, repairs: Any, *, whole: bool, wait: Any,
                  deadline: float | None) -> str | None:
    """Rounds until nothing is broken, ``max_repairs`` rounds are done, or the job stops; ``wait()``
    runs the Waiter over the new chunks (its stop reason). The stop reason."""
    from ..checkpoint.reuse import Reuse

    for round_n in range(1, repairs.max + 1):
        lines = ctx.stats.lines
        reuse = Reuse(ctx.store.path, None, whole=whole, on_corrupt=ctx.store.quarantine)
        stop = RepairRound(ctx, opts, source, reuse, repairs, round_n, deadline=deadline).run()
        if ctx.stats.lines > lines or ctx.log.live():
            stop = wait() or stop
        if stop is not None or ctx.fatal is not None or ctx.stats.lines == lines:
            return stop
    return None
