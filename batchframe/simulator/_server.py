""":class:`Simulator`: the aiohttp server on its own event loop in a daemon thread."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ._app import build_app
from ._config import SimConfig
from ._controls import HOST, BatchControls
from ._stats import Stats

if TYPE_CHECKING:
    from ._spawn import SpawnedSimulator

BACKLOG = 8192
_SHUTDOWN_TIMEOUT_S = 0.2


def raise_fd_limit() -> None:
    """Raise the soft limit on open files to the hard limit (one socket per held connection)."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):  # e.g. macOS refuses an unlimited hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def listening_socket(port: int) -> socket.socket:
    """A TCP socket bound to 127.0.0.1:``port`` (0: a free port); aiohttp calls listen() on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if os.name == "posix":  # rebind right after a restart; on Windows it would allow port theft
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class Simulator(BatchControls):
    """A local, OpenAI-compatible Batch Chat simulator over real HTTP on 127.0.0.1.

    ``Simulator(config, port=0, **overrides)``: ``overrides`` are :class:`SimConfig` fields replacing
    those of ``config``. ``start()`` serves on a daemon thread and returns ``self``; use it as a
    context manager to stop it on exit. Answers are simulated: no real model is called.
    ``hold_batches(after_lines=0)``, ``release_batches()`` and ``expire_batches()`` steer Batch File mode.
    """

    def __init__(self, config: SimConfig | None = None, *, port: int = 0, **overrides: Any) -> None:
        base = config if config is not None else SimConfig()
        self.config = dataclasses.replace(base, **overrides) if overrides else base
        self._requested_port = port
        self._port: int | None = None
        self._stats = Stats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def spawn(config: SimConfig | None = None, *, port: int = 0, **overrides: Any) -> SpawnedSimulator:
        """Start a simulator in a separate Python process (off this process's GIL)."""
        from ._spawn import SpawnedSimulator

        base = config if config is not None else SimConfig()
        return SpawnedSimulator(dataclasses.replace(base, **overrides) if overrides else base, port=port)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the simulator has not been started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters (see the module docs for the keys)."""
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        """Zero the counters and the per-body attempt numbers."""
        self._stats.reset()

    def start(self) -> Simulator:
        """Start serving; returns once the port accepts connections."""
        if self.running:
            raise RuntimeError("the simulator is already running")
        raise_fd_limit()
        sock = listening_socket(self._requested_port)
        self._port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        started: list[BaseException | None] = []
        ready = threading.Event()
        thread = threading.Thread(target=self._serve, args=(loop, sock, started, ready), daemon=True,
                                  name=f"batchframe-simulator-{self._port}")
        thread.start()
        ready.wait()
        if started[0] is not None:
            thread.join()
            raise started[0]
        self._loop, self._thread = loop, thread
        return self

    def _serve(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
               started: list[BaseException | None], ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(build_app(self.config, self._stats), handler_cancellation=True,
                               access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S)
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.SockSite(runner, sock, backlog=BACKLOG).start())
        except BaseException as exc:  # reported to start()'s caller
            sock.close()
            started.append(exc)
            ready.set()
            loop.close()
            return
        started.append(None)
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    def stop(self) -> None:
        """Stop serving: requests in flight get their connection closed. Idempotent."""
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop = self._thread = None

    def __enter__(self) -> Simulator:
        return self if self.running else self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not started"
        return f"Simulator({where}, {'running' if self.running else 'stopped'})"
