"""What the user watches: a tqdm bar (a widget in Jupyter, a bar in a terminal) or, without a
terminal, a log line every ``log_every_s`` seconds on the ``batchframe`` logger."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger("batchframe")


def _fmt_tokens(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e4 else str(n)


class Progress:
    """Counts rows and tokens; renders to tqdm when a display is there, else to periodic logs."""

    def __init__(self, *, total: int, initial: int, enabled: bool, currency: str | None,
                 desc: str = "batchframe", log_every_s: float = 30.0) -> None:
        self.total = total
        self.done = initial
        self.failed = 0
        self.tokens_in = self.tokens_out = self.tokens_thinking = 0
        self.cost = 0.0
        self.currency = currency
        self.concurrency = 0
        self._bar: Any = None
        self._log_every = log_every_s
        self._last_log = self._start = time.monotonic()
        self._last_refresh = 0.0
        if enabled and _has_display():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="row", dynamic_ncols=True,
                             smoothing=0.05, mininterval=0.25)
        self._logging = enabled and self._bar is None

    def add(self, rows: int, *, failed: bool, prompt: int | None, completion: int | None,
            reasoning: int | None, cost: float | None) -> None:
        self.done += rows
        if failed:
            self.failed += rows
        self.tokens_in += prompt or 0
        self.tokens_out += completion or 0
        self.tokens_thinking += reasoning or 0
        self.cost += cost or 0.0
        if self._bar is not None:
            self._bar.update(rows)

    def tick(self, concurrency: int, in_flight: int) -> None:
        self.concurrency = concurrency
        now = time.monotonic()
        if self._bar is not None and now - self._last_refresh >= 0.5:
            self._last_refresh = now
            self._bar.set_postfix_str(self._postfix(in_flight), refresh=False)
        elif self._logging and now - self._last_log >= self._log_every:
            self._last_log = now
            log.info("batchframe: %d/%d rows, %s", self.done, self.total, self._postfix(in_flight))

    def _postfix(self, in_flight: int) -> str:
        parts = [f"failed={self.failed}",
                 f"tok in={_fmt_tokens(self.tokens_in)} out={_fmt_tokens(self.tokens_out)}"]
        if self.tokens_thinking:
            parts.append(f"thinking={_fmt_tokens(self.tokens_thinking)}")
        if self.currency is not None:
            parts.append(f"cost={self.cost:.4f} {self.currency}")
        parts.append(f"in flight={in_flight}/{self.concurrency}")
        return " ".join(parts)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(0), refresh=False)
            self._bar.close()
            self._bar = None


def _has_display() -> bool:
    """A Jupyter kernel, or a terminal on stderr."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
