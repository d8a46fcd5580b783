"""What the phases of a job share: the checkpoint store and the job log, the control plane, prices,
the budget, the counters, the stop flag; and ``ensure``, the one place a chunk gets its file and its
batch, in the crash-safe order: upload → record → create → record (an ``uploading`` / ``creating``
mark first, so that after a crash the list is searched only when the call may have happened)."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Callable

from ..exceptions import RunFatalError
from ..pipeline.budget import Budget
from ..pipeline.pricing import Prices
from ..pipeline.redact import Redactor
from ..pipeline.summary import Summary
from .control import Control
from .options import FileOptions
from .record import Chunk, JobLog, chunk_path

log = logging.getLogger("batchframe")


class FileBudget:
    """``max_cost`` over a job: spent (this call) + the worst case of every line in a live chunk
    (those of earlier calls included, from their recorded reserve) + a new line's worst case."""

    def __init__(self, max_cost: float | None, prices: Prices | None, params: Any, model: str,
                 live_reserve: float = 0.0) -> None:
        self.max_cost = max_cost
        self._budget = Budget(max_cost, prices, params, model) if max_cost is not None and prices else None
        self.reserved, self.spent = live_reserve, 0.0

    def worst(self, body: Any) -> float:
        return self._budget.worst_case(body) if self._budget is not None else 0.0

    def fits(self, extra: float) -> bool:
        return self.max_cost is None or self.spent + self.reserved + extra <= self.max_cost * (1 + 1e-12)

    def reserve(self, amount: float) -> None:
        self.reserved += amount

    def settle(self, reserve: float, spent: float) -> None:
        self.reserved = max(0.0, self.reserved - reserve)
        self.spent += spent


@dataclasses.dataclass
class Stats:
    lines: int = 0          # lines submitted by this call (resubmissions included)
    resubmitted: int = 0
    rows: int = 0           # rows answered (written) by this call
    ok_lines: int = 0


@dataclasses.dataclass
class JobContext:
    store: Any
    log: JobLog
    control: Control
    file: FileOptions
    prices: Prices | None
    max_attempts: int
    redact: Redactor
    budget: FileBudget
    summary: Summary
    progress: Any = None
    window: str = "24h"
    clock: Callable[[], float] = time.monotonic
    stop_event: threading.Event = dataclasses.field(default_factory=threading.Event)
    stats: Stats = dataclasses.field(default_factory=Stats)
    fatal: RunFatalError | None = None
    budget_hit: bool = False  # a line was left out: max_cost would not hold its worst case
    resubmit: bool = True   # off while cancelling / at a deadline / falling back: retries stay pending
    repairs: Any = None     # pipeline.repairs.Repairs: which answers to repair, and a repair's totals

    @property
    def dir(self) -> str:
        return self.log.dir

    def stopped(self) -> bool:
        return self.stop_event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep, cut short by a stop; True when a stop was asked."""
        return self.stop_event.wait(max(0.0, seconds))

    def set_fatal(self, exc: RunFatalError) -> None:
        if self.fatal is None:
            self.fatal = self.redact.error(exc)
            log.error("%s", self.fatal)

    def metadata(self, chunk: Chunk) -> dict:
        """Names the job and the chunk, for finding the batch again through the list."""
        return {"ds_name": f"batchframe {self.log.job_id} chunk {chunk.n}",
                "ds_description": (f"batchframe job {self.log.job_id}: chunk {chunk.n}, {chunk.lines} lines, "
                                   f"attempt {chunk.attempt}")[:200]}

    def filename(self, chunk: Chunk) -> str:
        return f"batchframe-{self.log.job_id}-chunk-{chunk.n:06d}.jsonl"

    def ensure(self, chunk: Chunk) -> None:
        """Give ``chunk`` its remote file and batch, recording each the moment it exists."""
        append = self.log.append
        if chunk.file_id is None:
            path = chunk_path(self.dir, chunk.n)
            found = self.control.find_file(self.filename(chunk), chunk.bytes) if chunk.uploading else None
            if found is None:
                try:
                    open(path, "rb").close()
                except FileNotFoundError:  # its input is gone: nothing to send; a rerun submits its rows
                    append({"e": "merged", "n": chunk.n, "status": "lost"})
                    return
                if not chunk.uploading:
                    append({"e": "uploading", "n": chunk.n})
                found = self.control.upload(path, self.filename(chunk), chunk.bytes)
            append({"e": "file", "n": chunk.n, "id": found})
        if chunk.batch_id is None:
            meta = self.metadata(chunk)
            batch = (self.control.find_batch(chunk.file_id, meta["ds_name"], chunk.recorded_at)
                     if chunk.creating else None)
            if batch is None:
                if not chunk.creating:
                    append({"e": "creating", "n": chunk.n})
                batch = self.control.create(file_id=chunk.file_id, endpoint=self.file.endpoint,
                                            window=self.window, metadata=meta, since=chunk.recorded_at)
            append({"e": "batch", "n": chunk.n, "id": batch.id, "expires_at": batch.expires_at,
                    "status": batch.status})
