"""``Job``: what ``submit()`` returns, a handle on a Batch File job recorded in a checkpoint.

    job = df.batchchat.submit(prompt_col="review", model="qwen-plus", checkpoint="runs/r")
    job.status()   # one row per batch: batch_id, status, total, completed, failed, expires_at, ...
    out = job.wait()     # polls, downloads, resubmits, then the frame, as complete() returns it
    out = job.cancel()   # cancels, collects what finished, the rest pending

The checkpoint is the job: the same ``submit()`` or ``complete(mode="file")`` with the same
checkpoint, from any process, re-attaches (submits nothing new) and ``wait()`` there returns the
frame. A ``Job`` holds the frame and the resolved options (never shown: the key is among them).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable

from ..exceptions import ConfigError, RunInterrupted
from .job import FileJob
from .record import TERMINAL, JobLog

log = logging.getLogger("batchframe")


class _NoSink:
    partial = False

    def write(self, rows: Any, columns: Any) -> None:  # a submit-only run writes no columns
        pass


def submit_job(opts: Any, source: Any, collect: Callable[[FileJob], Any]) -> "Job":
    """Phase A over ``source`` (``collect(FileJob(phase))`` later gives the frame)."""
    from ..pipeline.run import Run

    if opts.simulate is not None or opts.local is not None:
        raise ConfigError("submit() returns while the batches run on their server, and the server that "
                          "simulate=/local= starts stops when the call returns: start a simulator "
                          "(`batchframe simulate --port N`, or batchframe.Simulator()) and pass base_url=, "
                          "or use complete(mode='file')")
    outcome = Run(opts, source, _NoSink(), job=FileJob("submit")).run()
    if outcome.error is not None:
        raise outcome.error
    job = Job(opts, collect)
    if outcome.stop == "interrupted":
        raise RunInterrupted(f"interrupted while submitting: the batches made so far are recorded in "
                             f"{opts.checkpoint!r}; submit() again to go on", partial=job)
    s = outcome.summary
    if opts.progress:
        print(f"batchframe: {s.sent} lines submitted by this call; {job!r}; job.wait() collects the frame"
              + (f" (stopped: {s.stop_reason})" if s.stop_reason not in (None, "detached") else ""),
              file=sys.stderr)
    return job


class Job:
    def __init__(self, opts: Any, collect: Callable[[FileJob], Any]) -> None:
        self._opts = opts
        self._collect = collect

    @property
    def checkpoint(self) -> str:
        return self._opts.checkpoint

    def __repr__(self) -> str:  # never the key
        chunks = JobLog(self.checkpoint).chunks.values()
        live = sum(1 for c in chunks if c.live)
        return f"Job(checkpoint={self.checkpoint!r}, {len(chunks)} batches, {live} not merged yet)"

    def status(self) -> Any:
        """One row per batch of the job (live ones asked of the server now; merged ones as last seen)."""
        return batches(self.checkpoint, self._opts)

    def wait(self) -> Any:
        """Poll, download, resubmit until every batch is merged; then the frame, as ``complete()``."""
        return self._collect(FileJob("complete"))

    def cancel(self) -> Any:
        """Cancel the batches still running, collect what finished; the other rows come back pending."""
        return self._collect(FileJob("cancel"))


def batches(checkpoint: str, opts: Any = None) -> Any:
    """The job's batches as a frame; with ``opts`` (the key, the endpoint) live ones are retrieved."""
    import pandas as pd

    joblog = JobLog(checkpoint)
    control = None
    if opts is not None and any(c.live and c.batch_id for c in joblog.chunks.values()):
        from ..engine.wire import is_dashscope
        from ..pipeline.redact import Redactor
        from .control import Control, make_client
        from .options import file_base_url

        base = file_base_url(opts.spec.base_url)
        client = getattr(opts, "client", None)
        control = Control(make_client(base, opts.api_key, opts.timeout, client), timeout=opts.timeout,
                          retry=opts.retry, dashscope=is_dashscope(base), redact=Redactor(opts.secrets),
                          owned=client is None)
    rows = []
    try:
        for c in sorted(joblog.chunks.values(), key=lambda c: c.n):
            status, total, done, failed, expires = c.status, c.total, c.completed, c.failed, c.expires_at
            if control is not None and c.live and c.batch_id and (status not in TERMINAL):
                view = control.retrieve(c.batch_id)
                status, total, done, failed, expires = (view.status, view.total, view.completed, view.failed,
                                                        view.expires_at)
            rows.append({"batch_id": c.batch_id, "status": status or ("not created" if c.live else None),
                         "total": total, "completed": done, "failed": failed,
                         "expires_at": pd.to_datetime(expires, unit="s", utc=True) if expires else pd.NaT,
                         "chunk": c.n, "attempt": c.attempt, "lines": c.lines, "rows": c.rows,
                         "merged": not c.live})
    finally:
        if control is not None:
            control.close()
    columns = ["batch_id", "status", "total", "completed", "failed", "expires_at", "chunk", "attempt", "lines",
               "rows", "merged"]
    frame = pd.DataFrame(rows, columns=columns)
    for name in ("total", "completed", "failed", "chunk", "attempt", "lines", "rows"):
        frame[name] = frame[name].astype("Int64")
    frame["batch_id"] = frame["batch_id"].astype("string")
    frame["status"] = frame["status"].astype("string")
    frame["expires_at"] = pd.to_datetime(frame["expires_at"], utc=True)
    return frame
