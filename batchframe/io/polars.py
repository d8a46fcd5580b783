"""The Polars ends of a run: a ``polars.DataFrame`` in (``PolarsSource``, one batch: its rows as
pandas for the rows stage, keyed by ``id_col`` or by position) and out (``PolarsSink``: every input
column and row in order, plus the result columns with Polars types)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from ..exceptions import ConfigError
from ..records import RowBatch
from ..rows.keys import index_keys, position_keys
from .sources import to_frame

log = logging.getLogger("batchframe")


class PolarsSource:
    def __init__(self, df: Any, *, id_col: str | None, checkpoint: str | None) -> None:
        import polars as pl

        if not isinstance(df, pl.DataFrame):
            raise ConfigError(f"expected a polars DataFrame, got {type(df).__name__} (a LazyFrame: .collect() it first)")
        self.df, self.id_col = df, id_col
        self.rows = df.height
        self.columns = list(df.columns)
        self.batch_rows = max(1, df.height)
        if id_col is not None:
            if id_col not in df.columns:
                raise ConfigError(f"id_col {id_col!r} is not a column; columns: {self.columns}")
            ids = df.get_column(id_col)
            if ids.null_count():
                first = ids.is_null().arg_true()[0]
                raise ConfigError(f"id_col {id_col!r} is empty in row {first}: every row needs an id")
            if ids.n_unique() != df.height:
                dup = ids.filter(ids.is_duplicated()).unique().head(3).to_list()
                raise ConfigError(f"id_col {id_col!r} has duplicate values (e.g. {dup}); ids key the rows "
                                  "and the checkpoint, so they must be unique")
        elif checkpoint is not None and df.height:
            log.warning("batchframe: a Polars frame has no index, so rows are keyed by position: after "
                        "reordering or filtering the frame, a rerun takes the rows that moved for new rows "
                        "(their answers are found again by request, but with dedupe=False they are sent "
                        "again); pass id_col= with a unique column to key them by it instead")

    def _batch(self, df: Any) -> RowBatch:
        frame = to_frame(df.to_arrow())
        keys = (index_keys(pd.Index(frame[self.id_col])) if self.id_col is not None
                else position_keys(0, len(frame)))
        return RowBatch(0, frame, keys, None)

    def batches(self):
        if self.rows:
            yield self._batch(self.df)

    def empty(self) -> RowBatch:
        return self._batch(self.df.head(0))

    def fingerprint(self) -> dict:
        return {"kind": "polars", "rows": self.rows, "columns": self.columns}


class PolarsSink:
    partial = True

    def __init__(self, df: Any, parse: Any = None) -> None:
        self.df, self.parse = df, parse
        self._parts: list[pd.DataFrame] = []

    def write(self, rows: RowBatch, columns: pd.DataFrame) -> None:
        self._parts.append(columns)

    def frame(self) -> Any:
        import polars as pl

        cols = (self._parts[0] if len(self._parts) == 1 else pd.concat(self._parts)).reset_index(drop=True)
        if self.parse is not None:  # parsed against the responses; only the new columns are kept
            if self.parse.two_pass:
                self.parse.observe(cols)
                self.parse.settle()
            cols = self.parse.add(cols)
        return self.df.hstack(_to_polars(cols, pl).get_columns())


def _to_polars(cols: pd.DataFrame, pl: Any) -> Any:
    """Result columns as Polars columns: strings, Int64, Float64, Boolean; a parsed column of free-form
    values becomes a Polars struct or list where its values allow, else JSON text."""
    import orjson

    out = []
    for name in cols.columns:
        series = cols[name]
        try:
            out.append(pl.from_pandas(series.to_frame()).get_column(name))
        except Exception:  # noqa: BLE001  mixed free-form values: JSON text, as a file keeps them
            values = [None if v is None or v is pd.NA else orjson.dumps(v).decode() for v in series.tolist()]
            out.append(pl.Series(name, values, dtype=pl.String))
    return pl.DataFrame(out)
