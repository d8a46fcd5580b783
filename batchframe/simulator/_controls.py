"""Test controls shared by :class:`Simulator` and :class:`SpawnedSimulator`, over the ``/_sim`` routes.

Going through HTTP (not the event loop's objects) makes them work alike in-process and in a child
process, and from any thread.
"""

from __future__ import annotations

import urllib.request
from typing import Any

import orjson

HOST = "127.0.0.1"
_HTTP_TIMEOUT_S = 30.0
# the controls talk to 127.0.0.1: never through a proxy from the environment
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class BatchControls:
    """``hold_batches()``, ``release_batches()``, ``expire_batches()`` for a server on :attr:`port`."""

    port: int

    def _call(self, method: str, path: str) -> Any:
        request = urllib.request.Request(f"http://{HOST}:{self.port}{path}", method=method)
        with _OPENER.open(request, timeout=_HTTP_TIMEOUT_S) as response:
            return orjson.loads(response.read())

    def hold_batches(self, after_lines: int = 0) -> None:
        """Hold every batch in progress, now and later, once it has run ``after_lines`` lines."""
        self._call("POST", f"/_sim/batches/hold?after_lines={int(after_lines)}")

    def release_batches(self) -> None:
        """Let every held batch go on (also lifts ``batch_hold_lines``)."""
        self._call("POST", "/_sim/batches/release")

    def expire_batches(self) -> None:
        """Expire every batch not done yet, before its next line."""
        self._call("POST", "/_sim/batches/expire")
