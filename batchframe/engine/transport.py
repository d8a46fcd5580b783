"""The engine's transport for real runs: every call on one asyncio event loop in a daemon thread.

The engine's dispatcher stays in the calling thread and decides everything (see ``_engine``); this
only carries calls: ``submit`` hands a request to the loop, and each answer is handed back through
the engine's completion queue. One loop holds 10,000 waiting calls for a few hundred MiB and a
fraction of a core, where a thread per call spends the machine on starting and switching 10,000
threads (benchmarks/bench.py, section ``wait``).

The loop's thread is a daemon and ``close`` cancels whatever is still in flight (its connections
are closed), so an hour-long call never keeps a script from exiting after Ctrl-C.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from typing import Any, Awaitable, Callable, Mapping, Protocol

from ..records import ABANDONED, Reply
from .pacing import Pacer

log = logging.getLogger("batchframe")

_CLOSE_WAIT_S = 2.0
# New calls started per turn of the loop when no rate is set. Calls already under way (connecting,
# writing, reading) go first: started all at once, 10,000 new calls would each wait behind the
# building of all the others before its bytes went out, and their answers would come back in one
# burst too. With a rate (``pace``), the pacer spaces the starts instead.
_STARTS_PER_TURN = 16


class AsyncCall(Protocol):
    def __call__(self, body: Mapping[str, Any]) -> Awaitable[Reply]: ...

    async def aclose(self) -> None: ...


class AsyncTransport:
    """``factory()`` builds the async caller on the loop's thread (an SDK client belongs to the loop
    it runs on)."""

    def __init__(self, factory: Callable[[], AsyncCall], *, name: str = "batchframe-io") -> None:
        self._done: Callable[[Any], None] = lambda x: None
        self._loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task] = set()
        self._incoming: deque[tuple[Any, Mapping[str, Any]]] = deque()
        self._kicked = False
        self._closed = False
        self._shutdown_scheduled = False
        self._call: AsyncCall | None = None
        self._pacer = Pacer(None, clock=self._loop.time)
        self._timer: asyncio.TimerHandle | None = None
        ready = threading.Event()
        failed: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, args=(factory, ready, failed), name=name,
                                        daemon=True)
        self._thread.start()
        ready.wait()
        if failed:
            self._thread.join()
            raise failed[0]

    def bind(self, done: Callable[[Any], None]) -> None:
        self._done = done

    def submit(self, item: Any, body: Mapping[str, Any], in_flight: int) -> None:
        if self._closed:
            raise RuntimeError("the transport is closed")
        self._incoming.append((item, body))
        if not self._kicked:  # one wake-up of the loop per burst of submissions, not one per call
            self._kicked = True
            self._loop.call_soon_threadsafe(self._start_some)

    def pace(self, rate: float | None, burst: float = 1.0) -> None:
        """Start calls at most ``rate`` a second, evenly spaced (``pacing.Pacer``), from now on.
        Safe from any thread; the pacer itself lives on the loop."""
        def apply() -> None:
            self._pacer.set_rate(rate, burst)
            self._start_some()

        try:
            self._loop.call_soon_threadsafe(apply)
        except RuntimeError:  # the loop is already gone
            pass

    def withdraw(self) -> None:
        """Take back the calls submitted but not started yet (the engine stopped): each comes back
        at once as an "abandoned" reply, never sent, so nothing is paid for a row left pending.
        Safe from any thread and from a signal handler."""
        incoming = self._incoming
        while True:
            try:
                item, _ = incoming.popleft()
            except IndexError:
                break
            self._done((item, ABANDONED))

    def close(self) -> None:
        """Send nothing more; cancel calls in flight (abandoned: no reply); stop the loop."""
        self._closed = True
        if self._shutdown_scheduled:
            return
        try:
            self._loop.call_soon_threadsafe(self._shutdown)
        except RuntimeError:  # the loop is already gone
            return
        self._shutdown_scheduled = True
        self._thread.join(_CLOSE_WAIT_S + len(self._tasks) / 2000)

    # ------------------------------------------------------------- on the loop's thread
    def _serve(self, factory: Callable[[], AsyncCall], ready: threading.Event,
               failed: list[BaseException]) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            self._call = factory()
        except BaseException as exc:  # reported to the constructor's caller
            failed.append(exc)
            loop.close()
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_default_executor())  # aiohttp's DNS lookups
        finally:
            loop.close()

    def _start_some(self) -> None:
        self._kicked = False  # first: a submission from now on wakes the loop again (at worst twice)
        incoming, loop, pacer = self._incoming, self._loop, self._pacer
        paced = pacer.rate is not None
        for _ in range(_STARTS_PER_TURN):
            if not incoming or self._closed:
                return
            if paced:
                wait = pacer.delay()
                if wait > 0:
                    if self._timer is None:
                        self._timer = loop.call_later(wait, self._timer_due)
                    return
            item, body = incoming.popleft()
            task = loop.create_task(self._one(item, body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if incoming and not self._kicked:
            self._kicked = True
            loop.call_soon(self._start_some)  # behind the callbacks already ready: calls under way

    def _timer_due(self) -> None:
        self._timer = None
        self._start_some()

    async def _one(self, item: Any, body: Mapping[str, Any]) -> None:
        assert self._call is not None
        try:
            reply = await self._call(body)
        except asyncio.CancelledError:
            if self._closed:
                raise  # abandoned by close(): nobody reads replies any more
            reply = Reply(kind="connection", code="cancelled", message="the call was cancelled")
        except Exception as exc:  # a bug or an unexpected SDK error: never lose the row silently
            log.debug("call raised", exc_info=True)
            reply = Reply(kind="connection", code="client_error", message=f"{type(exc).__name__}: {exc}")
        self._done((item, reply))

    def _shutdown(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()

        async def finish() -> None:
            if tasks:  # cancelled calls close their connections: thousands take a moment
                await asyncio.wait(tasks, timeout=_CLOSE_WAIT_S / 2 + len(tasks) / 4000)
            try:
                if self._call is not None:
                    await asyncio.wait_for(self._call.aclose(), _CLOSE_WAIT_S / 2)
            except Exception:  # closing must never hide the run's own outcome
                log.debug("closing the client failed", exc_info=True)
            self._loop.stop()

        self._loop.create_task(finish())
