"""Batch File mode's batches: the batch object, the store that runs them, and the test controls.

Life of a batch: validating → in_progress → finalizing → completed; or failed (validation, with
``errors``), expired (``batch_expire_after_lines``, :meth:`BatchStore.expire_all`, or its window
passed), cancelling → cancelled. ``request_counts`` grow as lines finish. The controls (hold every
batch in progress after K lines, release, expire now) act on every batch of the server at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._batch_lines import LineAnswerer
from ._batch_run import run_batch
from ._config import SimConfig
from ._files import FileStore
from ._http import HTTPError
from ._stats import Stats

if TYPE_CHECKING:
    from collections.abc import Coroutine

#: statuses a batch never leaves
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
STATUSES = ("validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling",
            "cancelled")
_STAMPED = ("in_progress", "finalizing", "completed", "failed", "expired", "cancelling", "cancelled")


@dataclass(eq=False)
class Batch:
    """One batch and its progress (mutated only on the server's event loop)."""

    id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, str] | None
    created_at: int
    expires_at: int
    authorization: str | None = field(default=None, repr=False)  # for ErrorRule echoes only
    status: str = "validating"
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    stamps: dict[str, int] = field(default_factory=dict)
    cancel_requested: bool = False
    expire_requested: bool = False

    def to_json(self) -> dict[str, Any]:
        """The OpenAI batch object."""
        return {
            "id": self.id, "object": "batch", "endpoint": self.endpoint,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id, "completion_window": self.completion_window,
            "status": self.status, "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id, "created_at": self.created_at,
            **{f"{status}_at": self.stamps.get(status) for status in _STAMPED},
            "expires_at": self.expires_at,
            "request_counts": {"total": self.total, "completed": self.completed, "failed": self.failed},
            "metadata": self.metadata,
        }


class BatchStore:
    """The server's batches, each run by its own task on the event loop."""

    def __init__(self, config: SimConfig, stats: Stats, files: FileStore) -> None:
        self.config, self.stats, self.files = config, stats, files
        self.answerer = LineAnswerer(config, stats)
        #: every batch in progress waits once it has run this many lines (None: no hold)
        self.hold_lines = config.batch_hold_lines
        #: creates answered so far by never answering (``stall_batch_creates``)
        self.stalled = 0
        self._batches: dict[str, Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None

    def create(self, *, endpoint: str, input_file_id: str, completion_window: str, window_s: int,
               metadata: dict[str, str] | None, authorization: str | None) -> Batch:
        now = int(time.time())
        batch = Batch(f"batch_{uuid.uuid4()}", endpoint, input_file_id, completion_window, metadata, now,
                      now + window_s, authorization)
        self._batches[batch.id] = batch
        self.stats.batch_moved(None, batch.status)
        self._start(run_batch(batch, self))
        return batch

    def _start(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def require(self, batch_id: str) -> Batch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise HTTPError(404, f"No batch found with id '{batch_id}'.", param="batch_id")
        return batch

    def listing(self) -> list[Batch]:
        """Every batch, newest first."""
        return list(reversed(self._batches.values()))

    def move(self, batch: Batch, status: str) -> None:
        self.stats.batch_moved(batch.status, status)
        batch.status = status
        if status in _STAMPED:
            batch.stamps[status] = int(time.time())

    def cancel(self, batch: Batch) -> None:
        if batch.status in ("completed", "failed", "expired"):
            raise HTTPError(409, f"Cannot cancel a batch with status '{batch.status}'.")
        if batch.status not in ("cancelling", "cancelled"):
            batch.cancel_requested = True
            self.move(batch, "cancelling")
            self.notify()

    # ------------------------------------------------------------ test controls

    def hold(self, after_lines: int) -> None:
        """Hold every batch in progress once it has run ``after_lines`` lines."""
        self.hold_lines = after_lines
        self.notify()

    def release(self) -> None:
        self.hold_lines = None
        self.notify()

    def expire_all(self) -> None:
        """Expire every batch not yet done, at its next line."""
        for batch in self._batches.values():
            if batch.status not in TERMINAL:
                batch.expire_requested = True
        self.notify()

    # ------------------------------------------------------------ waiting

    def notify(self) -> None:
        """Wake every runner waiting in :meth:`nap` (a control or a cancel changed something)."""
        if self._wake is not None:
            self._wake.set()
        self._wake = asyncio.Event()

    async def nap(self, timeout: float | None) -> None:
        """Wait until :meth:`notify` or ``timeout`` seconds (None: no timeout)."""
        if self._wake is None:
            self._wake = asyncio.Event()
        event = self._wake
        if timeout is None:
            await event.wait()
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    async def pause(self, batch: Batch, seconds: float) -> None:
        """Wait ``seconds``, cut short by a cancel of ``batch``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not batch.cancel_requested and (remaining := deadline - loop.time()) > 0:
            await self.nap(remaining)

    async def close(self) -> None:
        """Stop every runner (the server is stopping)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
