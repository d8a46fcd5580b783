"""How an in-memory front door ends a run: the result frame returned, or an exception carrying it.

Shared by the pandas and the Polars doors: the summary goes into ``frame.attrs`` (pandas) and to
stderr when ``progress=True``; a run-stopping error is raised with the frame as ``.partial``; an
interrupt returns the frame in Jupyter and raises ``RunInterrupted`` in scripts (``on_interrupt=``);
a budget or deadline stop returns the frame with rows ``pending``, or raises ``BudgetExceeded``
carrying it with ``on_budget="raise"``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from ..exceptions import BudgetExceeded, RunInterrupted
from .options import RunOptions
from .summary import Outcome
from .signals import interactive

log = logging.getLogger("batchframe")


def deliver(outcome: Outcome, opts: RunOptions, out: Any) -> Any:
    summary = outcome.summary
    if opts.progress:
        print(summary.render(), file=sys.stderr)
    else:
        for line in summary.render().splitlines()[1:]:
            if "WARNING" in line:
                log.warning("batchframe:%s", line.replace("  WARNING:", ""))
    if outcome.error is not None:
        outcome.error.partial = out
        raise outcome.error
    if outcome.stop == "interrupted":
        where = (f" (checkpoint {opts.checkpoint!r})" if opts.checkpoint
                 else " (no checkpoint: pass checkpoint= to keep them)")
        msg = (f"interrupted: {summary.ok + summary.failed} rows finished, {summary.pending} pending"
               f"{where}. Rerun the same call to resume.")
        if opts.on_interrupt == "raise" or (opts.on_interrupt == "auto" and not interactive()):
            raise RunInterrupted(msg, partial=out)
        log.warning("%s", msg)
    if outcome.stop in ("budget", "deadline") and opts.on_budget == "raise":
        what = "max_cost" if outcome.stop == "budget" else "deadline_s"
        raise BudgetExceeded(f"{what} reached: {summary.pending} rows pending; rerun the same call (with "
                             f"a larger {what}) to resume", code=outcome.stop, partial=out)
    return out
