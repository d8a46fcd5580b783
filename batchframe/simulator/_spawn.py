""":class:`SpawnedSimulator`: a simulator in a child Python process, off the client's GIL.

The parent sends the pickled ``(config, port)`` on the child's stdin; the child answers with its port
on stdout once listening, then serves until its stdin closes (``stop()``, or the parent's death).
The child runs in its own session, so a Ctrl-C aimed at the parent does not reach it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from ._config import SimConfig
from ._controls import HOST, BatchControls

_CHILD = "from batchframe.simulator._spawn import child_main; child_main()"
_HEADER = struct.Struct(">Q")
_STOP_TIMEOUT_S = 10.0


class SpawnedSimulator(BatchControls):
    """Handle on a simulator process: ``base_url``, ``port``, ``stats()``, ``reset_stats()``, ``stop()``,
    and the batch controls (``hold_batches()``, ``release_batches()``, ``expire_batches()``)."""

    def __init__(self, config: SimConfig, *, port: int = 0) -> None:
        self.config = config
        payload = pickle.dumps((config, port))
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, env=env, start_new_session=True)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.write(_HEADER.pack(len(payload)) + payload)
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        except BrokenPipeError:
            line = b""
        if not line.strip().isdigit():
            self._proc.kill()
            code = self._proc.wait()
            raise RuntimeError(f"the simulator process failed to start (exit code {code}); see its stderr")
        self.port = int(line)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def stats(self) -> dict[str, Any]:
        """The child's counters, as :meth:`Simulator.stats` returns them."""
        stats: dict[str, Any] = self._call("GET", "/_sim/stats")
        for name in ("by_status", "lines_by_status"):
            stats[name] = {int(status): n for status, n in stats[name].items()}
        return stats

    def reset_stats(self) -> None:
        self._call("POST", "/_sim/reset")

    def stop(self) -> None:
        """Stop the child process (killed if it does not exit within 10 s). Idempotent."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> SpawnedSimulator:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"SpawnedSimulator({self.base_url}, pid={self._proc.pid}, " \
               f"{'running' if self.running else 'stopped'})"


def child_main() -> None:
    """Entry point of the child process (see the module docstring)."""
    from ._server import Simulator

    stdin = sys.stdin.buffer
    (size,) = _HEADER.unpack(stdin.read(_HEADER.size))
    config, port = pickle.loads(stdin.read(size))
    simulator = Simulator(config, port=port).start()
    sys.stdout.write(f"{simulator.port}\n")
    sys.stdout.flush()
    stdin.read()  # returns at EOF: the parent stopped us or went away
    simulator.stop()
