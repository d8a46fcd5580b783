"""batchframe on Polars: ``import batchframe.polars`` registers ``pl.DataFrame.batchchat``.

    import polars as pl
    import batchframe.polars  # importing batchframe alone never imports polars
    out = df.batchchat.complete(prompt_col="review", model="qwen-plus", id_col="review_id",
                                checkpoint="runs/reviews")

The same run as ``batchframe.complete`` (every option, the same result columns, with Polars types),
over a Polars frame: a Polars frame in, a new Polars frame out, input columns and row order kept.
A Polars frame has no index: rows are keyed by ``id_col=`` (a unique, never-empty column) when given,
else by their position (said once when a checkpoint is used: reordering the frame then re-runs rows).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import polars as pl

from .io.polars import PolarsSink, PolarsSource
from .pipeline.deliver import deliver
from .pipeline.options import resolve, resolve_offline

__all__ = ["PolarsBatchChat", "complete", "estimate"]


def complete(df: pl.DataFrame, prompt_col: str | None = None, *, id_col: str | None = None,
             **options: Any) -> pl.DataFrame:
    """``batchframe.complete`` for a Polars frame (see it for every option), plus ``id_col``."""
    from .pipeline.parsed import Parse
    from .pipeline.run import Run

    opts = resolve(prompt_col, **options)
    opts = dataclasses.replace(opts, rows=dataclasses.replace(opts.rows, id_col=id_col))
    source = PolarsSource(df, id_col=id_col, checkpoint=opts.checkpoint)
    parse = (Parse(opts.structured, opts.names, nested="object")
             if opts.structured is not None and opts.structured.parse else None)
    sink = PolarsSink(df, parse)
    outcome = Run(opts, source, sink).run()
    out = sink.frame()
    if parse is not None:
        outcome.summary.parse_errors = parse.errors
    return deliver(outcome, opts, out)


def estimate(df: pl.DataFrame, prompt_col: str | None = None, *, id_col: str | None = None,
             output_tokens: int = 100, image_tokens: int = 1280, **options: Any) -> Any:
    """``batchframe.estimate`` for a Polars frame (no ``sample=``: estimate a pandas sample for that)."""
    from .pipeline.estimate import estimate_source

    opts = resolve_offline(prompt_col, **options)
    opts = dataclasses.replace(opts, rows=dataclasses.replace(opts.rows, id_col=id_col))
    return estimate_source(opts, PolarsSource(df, id_col=id_col, checkpoint=None),
                           output_tokens=output_tokens, image_tokens=image_tokens)


@pl.api.register_dataframe_namespace("batchchat")
class PolarsBatchChat:
    """``df.batchchat.complete(...)`` / ``.estimate(...)`` on a Polars frame (holds only the frame)."""

    def __init__(self, df: pl.DataFrame) -> None:
        self._df = df

    def complete(self, prompt_col: str | None = None, **kwargs: Any) -> pl.DataFrame:
        return complete(self._df, prompt_col, **kwargs)

    def estimate(self, prompt_col: str | None = None, **kwargs: Any) -> Any:
        return estimate(self._df, prompt_col, **kwargs)


PolarsBatchChat.complete.__doc__ = complete.__doc__
PolarsBatchChat.estimate.__doc__ = estimate.__doc__
