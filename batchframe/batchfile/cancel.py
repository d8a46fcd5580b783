"""``batchframe cancel CHECKPOINT``: cancel a checkpoint's live batches and collect what finished,
with no input at hand: the job log names the file endpoint, the maps name the rows, the checkpoint's
metadata the prices; the key comes from the environment (``DASHSCOPE_API_KEY`` for DashScope hosts,
else ``BATCHFRAME_API_KEY``), as for a run. The next ``batchframe run`` writes the output."""

from __future__ import annotations

import os
from typing import Any

from ..checkpoint.meta import read_meta
from ..engine.retry import RetryPolicy
from ..engine.wire import is_dashscope
from ..exceptions import CheckpointError
from ..pipeline.pricing import CURRENCY, Prices, Tier
from ..pipeline.redact import Redactor
from ..pipeline.summary import Summary
from .context import FileBudget, JobContext
from .control import Control, make_client
from .options import FileOptions, poll_interval
from .record import JobLog
from .wait import Waiter


def _prices(meta: dict) -> Prices | None:
    stored = meta.get("prices")
    if not isinstance(stored, dict) or not stored.get("tiers"):
        return None
    return Prices(tuple(Tier(**t) for t in stored["tiers"]), str(stored.get("source")))


def cancel_checkpoint(path: str, *, poll_s: float | None = None, timeout: float = 3600.0) -> dict[str, Any]:
    """Cancel, wait for the cancels to settle, merge; the counts (batches cancelled, rows answered)."""
    from ..checkpoint.store import CheckpointStore

    if not JobLog.exists(path):
        raise CheckpointError(f"{path} holds no Batch File job (no batch was ever submitted from it)")
    joblog = JobLog(path)
    base = (joblog.job or {}).get("endpoint")
    if not base:
        raise CheckpointError(f"{path}: its job log does not name the file endpoint")
    key = os.environ.get("DASHSCOPE_API_KEY" if is_dashscope(base) else "BATCHFRAME_API_KEY") or None
    stored = read_meta(path) or {}
    meta = stored.get("meta") if isinstance(stored.get("meta"), dict) else {}
    prices = _prices(meta)
    redact = Redactor([key])
    store = CheckpointStore(path).open()
    live = len(joblog.live())
    try:
        joblog = JobLog(path).open()
        control = Control(make_client(base, key, timeout), timeout=timeout, retry=RetryPolicy(),
                          dashscope=is_dashscope(base), redact=redact)
        summary = Summary(rows=0, unique_requests=0, currency=CURRENCY if prices else None)
        ctx = JobContext(store=store, log=joblog, control=control, file=FileOptions(mode="file"), prices=prices,
                         max_attempts=RetryPolicy().max_attempts, redact=redact,
                         budget=FileBudget(None, None, {}, ""), summary=summary)
        file = FileOptions(mode="file", poll_s=poll_s)
        poll, backoff = poll_interval(file, base)
        try:
            reason = Waiter(ctx, poll=poll, backoff=backoff, cancel=True).run()
        finally:
            control.close()
            joblog.close()
        if ctx.fatal is not None:
            raise ctx.fatal
    finally:
        store.close()
    return {"batches": live, "rows_answered": ctx.stats.rows, "left": len(JobLog(path).live()),
            "stop": reason, "cost": summary.cost if prices else None}
