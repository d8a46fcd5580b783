"""The pandas ends of a run: a frame in (``FrameSource``: the whole frame as one batch, rows keyed
by their index label) and the same frame out with the result columns (``FrameSink``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..exceptions import ConfigError
from ..records import RowBatch
from ..rows.keys import index_keys


def check_frame(df: Any) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ConfigError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if not df.index.is_unique:
        dup = df.index[df.index.duplicated()][:3].tolist()
        raise ConfigError(
            f"the index has duplicate labels (e.g. {dup}); batchframe keys rows (and checkpoints) by "
            "index label. Fix: df = df.reset_index(drop=True), or set a unique id column as the index.")
    if df.columns.duplicated().any():
        dup = list(dict.fromkeys(df.columns[df.columns.duplicated()].tolist()))[:3]
        raise ConfigError(f"the frame has duplicate column names {dup}: a column must be named once "
                          "(rename them, e.g. df.columns = [...], before calling batchframe)")


class FrameSource:
    def __init__(self, df: pd.DataFrame) -> None:
        check_frame(df)
        self.df = df
        self.rows = len(df)
        self.columns = list(df.columns)
        self.batch_rows = max(1, len(df))  # one batch: the frame is in memory anyway

    def batches(self):
        if self.rows:
            yield RowBatch(0, self.df, index_keys(self.df.index))

    def empty(self) -> RowBatch:
        return RowBatch(0, self.df.iloc[:0], [])

    def fingerprint(self) -> dict:
        return {"kind": "pandas", "rows": self.rows, "columns": [str(c) for c in self.columns]}


class FrameSink:
    """Collects the result columns; ``frame()`` is a new frame: every input column and row, same
    index and order, plus the result columns (and the parsed ones). The input is never mutated."""

    partial = True  # a stopped run still returns every row (unanswered ones pending)

    def __init__(self, df: pd.DataFrame, parse: Any = None) -> None:
        self.df = df
        self.parse = parse
        self._parts: list[pd.DataFrame] = []

    def write(self, rows: RowBatch, columns: pd.DataFrame) -> None:
        self._parts.append(columns)

    def frame(self) -> pd.DataFrame:
        cols = self._parts[0] if len(self._parts) == 1 else pd.concat(self._parts)
        out = self.df.copy(deep=False)
        for name in cols.columns:
            out[name] = cols[name]
        if self.parse is not None:
            if self.parse.two_pass:
                self.parse.observe(out)
                self.parse.settle()
            out = self.parse.add(out)
        return out
