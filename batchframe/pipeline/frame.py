"""One run over a pandas frame: the frame as the run's source and sink, the outcome as a frame (the
front doors that hold a pandas frame call this: ``complete()``, ``submit()``'s collection, Dask's
partitions, ``estimate(sample=N)``)."""

from __future__ import annotations

from typing import Any, Callable

import pandas as pd

from ..io.frames import FrameSink, FrameSource
from .deliver import deliver
from .options import RunOptions


def run_frame(df: pd.DataFrame, opts: RunOptions, *, on_engine: Callable[[Any], None] | None = None,
              job: Any = None) -> pd.DataFrame:
    """One run over a pandas frame with resolved options."""
    from .parsed import Parse
    from .run import Run

    source = FrameSource(df)
    parse = (Parse(opts.structured, opts.names, nested="object")
             if opts.structured is not None and opts.structured.parse else None)
    sink = FrameSink(df, parse, opts.names["tool_calls"] if "tool_calls" in opts.outputs else None)
    outcome = Run(opts, source, sink, on_engine=on_engine, job=job).run()
    out = sink.frame()
    if parse is not None:
        outcome.summary.parse_errors = parse.errors
    out.attrs["batchframe"] = outcome.summary.as_dict()
    return deliver(outcome, opts, out)
