"""What the user watches: a tqdm bar (a widget in Jupyter, a bar in a terminal) or, without a
terminal, a line every ``log_every_s`` seconds on the ``batchframe`` logger (INFO) — printed to
stderr when nothing listens to that logger, so an ETL job's log shows progress without setup.

The bar keeps a fixed width and the counts that matter first (in flight, failed), so a narrow
terminal cuts the least useful end of the line, never the bar or the in-flight count."""

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
                             smoothing=0.05, mininterval=0.25, bar_format=BAR_FORMAT)
        self._logging = enabled and self._bar is None

    def settle(self, rows: int) -> None:
        """Rows done without a call (resumed from the checkpoint, or with no prompt): counted, but
        not as throughput (the rate and the time left are about the calls)."""
        self.done += rows
        if self._bar is not None:
            self._bar.n += rows
            self._bar.initial += rows
            self._bar.last_print_n = self._bar.n
            self._bar.refresh()

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
            line = f"batchframe: {self.done}/{self.total} rows, {self._postfix(in_flight)}"
            if log.isEnabledFor(logging.INFO) and _listened():
                log.info("%s", line)
            else:  # nobody configured logging: the promised lines still reach the job's log
                print(line, file=sys.stderr, flush=True)

    def _postfix(self, in_flight: int) -> str:
        parts = [f"in flight {in_flight}/{self.concurrency}", f"failed {self.failed}",
                 f"tok {_fmt_tokens(self.tokens_in)} in {_fmt_tokens(self.tokens_out)} out"]
        if self.tokens_thinking:
            parts.append(f"{_fmt_tokens(self.tokens_thinking)} thinking")
        if self.currency is not None:
            parts.append(f"{self.cost:.4f} {self.currency}")
        return ", ".join(parts)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(0), refresh=False)
            self._bar.close()
            self._bar = None


BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar:16}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}] {postfix}"


def _listened() -> bool:
    """Whether a handler anywhere up the ``batchframe`` logger's chain would take an INFO line."""
    logger: logging.Logger | None = log
    while logger is not None:
        if any(h.level <= logging.INFO for h in logger.handlers):
            return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


def _has_display() -> bool:
    """A Jupyter kernel, or a terminal on stderr."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
