"""Wait items: how the streaming run tells the engine "nothing to send now" (see ``_stream``).

The engine asks its request iterator for more whenever a slot is free, and takes the end of the
iterator as the end of the work. While the read-ahead window is full, the stream's iterator hands out
wait items instead: the transport sleeps on one (a task on its loop) until a batch is written or
``WAIT_S`` passes, and returns an empty success that the stream discards (and takes out of the counts it reports).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Mapping

from ..records import Reply, Request

WAIT_S = 1.0
WAIT_RID = "batchframe-wait"
WAIT_BODY: Mapping[str, Any] = {"wait": True}


class Pause:
    """Wait items: sleep in a worker until the window has room (see the module doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []
        self.issued = 0      # wait items handed to the engine (taken out of its "sent" count)
        self.in_flight = 0

    def item(self) -> Request:
        self.issued += 1
        self.in_flight += 1
        return Request(WAIT_RID, WAIT_BODY)

    async def wait_async(self) -> Reply:
        """Sleep until ``release`` or ``WAIT_S``, as a task on the transport's event loop."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        with self._lock:
            self._waiters.append((loop, fut))
        try:
            await asyncio.wait([fut], timeout=WAIT_S)
        finally:
            with self._lock:
                try:
                    self._waiters.remove((loop, fut))
                except ValueError:  # release() took it
                    pass
        return Reply(kind="ok")

    def release(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        loops: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
        for loop, fut in waiters:
            loops.setdefault(loop, []).append(fut)
        for loop, futs in loops.items():
            try:
                loop.call_soon_threadsafe(_wake, futs)
            except RuntimeError:  # that loop is closed: its waiters are gone
                pass


def _wake(futs: list[asyncio.Future]) -> None:
    for fut in futs:
        if not fut.done():
            fut.set_result(None)
