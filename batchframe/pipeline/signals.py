"""Ctrl-C, SIGTERM and the Jupyter stop button: the first one asks the run to stop and save; a
second one interrupts at once, like Python normally does."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Callable


class StopSignals:
    """Context manager: while active, SIGINT/SIGTERM call ``on_stop`` instead of raising.

    Only the main thread can own signal handlers; elsewhere this does nothing (and Ctrl-C
    is delivered to the main thread anyway).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, on_stop: Callable[[str], None]) -> None:
        self._on_stop = on_stop
        self._old: dict[int, object] = {}
        self.received: str | None = None

    def _handle(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:  # second signal: give the user their prompt back now
            self.__exit__()
            raise KeyboardInterrupt
        self.received = name
        self._on_stop(name)

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                try:
                    self._old[sig] = signal.signal(sig, self._handle)
                except (ValueError, OSError):  # e.g. embedded interpreters
                    pass
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
        self._old.clear()


def interactive() -> bool:
    """A Jupyter kernel or an interactive prompt: interrupted runs return their partial frame."""
    return "ipykernel" in sys.modules or hasattr(sys, "ps1") or bool(sys.flags.interactive)
