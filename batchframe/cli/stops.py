"""What stops a command outside the run loop: a first Ctrl-C or SIGTERM, a full disk.

The run loop handles signals itself (stop sending, save, report). Before it starts (reading and
checking the input, opening the checkpoint, starting the simulator) and after it ends (writing the
output), ``StopOnSignal`` turns SIGINT and SIGTERM into ``Stopped``: the command unwinds as after a
Ctrl-C (temp files removed, the checkpoint closed) and ends with one line, not a silent -15.

``disk_full`` says which disk is full, the checkpoint's or the output's (the innermost batchframe
writer in the traceback: neither ``os.write`` nor pyarrow names the file), and what is safe.
"""

from __future__ import annotations

import errno
import signal
import threading
from typing import Any

_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class Stopped(KeyboardInterrupt):
    """A first SIGINT or SIGTERM outside the run loop."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class StopOnSignal:
    """While active (in the main thread): SIGINT and SIGTERM raise ``Stopped``. The run loop installs
    its own handlers meanwhile and puts these back after."""

    def __enter__(self) -> "StopOnSignal":
        self._old: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    self._old[sig] = signal.signal(sig, self._raise)
                except (ValueError, OSError):  # an embedded interpreter
                    pass
        return self

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        raise Stopped(signal.Signals(signum).name)

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def is_full(exc: OSError) -> bool:
    """No space left (or over quota); pyarrow sometimes says so only in its message."""
    return exc.errno in _FULL or any(f"[Errno {n}]" in str(exc) or f"[errno {n}]" in str(exc) for n in _FULL)


def disk_full(exc: OSError, ckpt: str | None) -> str:
    """One line: what is full, and that the checkpoint holds every answer saved (``ckpt``: the
    command's checkpoint, if it has one)."""
    from ..checkpoint.store import CheckpointStore
    from ..io.sinks import TableWriter

    what = f"writing {exc.filename}" if exc.filename else "writing"
    tb = exc.__traceback__
    while tb is not None:  # the innermost batchframe writer wins
        obj = tb.tb_frame.f_locals.get("self")
        if isinstance(obj, CheckpointStore):
            what, ckpt = f"writing the checkpoint {obj.path}", obj.path
        elif isinstance(obj, TableWriter):
            what = f"writing the output {obj.path}"
        tb = tb.tb_next
    where = (f"the checkpoint {ckpt} holds every answer saved before that: free some space and rerun the "
             f"same command to resume (only calls in flight then are sent again)"
             if ckpt else "there is no checkpoint (--no-checkpoint): this run's answers are lost")
    return f"the disk is full (no space left {what}); {where}"
