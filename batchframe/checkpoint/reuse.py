"""Resume: which rows a checkpoint already answered, and their stored columns, in one Arrow pass.

A row is reused when the checkpoint's latest row for its key answered the same request hash and
succeeded, or failed for good (unless the caller asks to retry that failure); or, failing that,
when another key's latest row answered the same request successfully (an identical request).
Everything is joined in Arrow. When the checkpoint holds each of the frame's keys once (one run's
parts, in frame order; a compacted checkpoint, sorted by key), rows are matched by comparing keys
(in order, or both sorted), not by a hash join; when every row is reused as stored, the result
columns go to pandas as read, without a ``take``.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .read import _read_all
from ..records import OK, RESULT_COLUMNS, is_transient

_MAPPING: dict | None = None


def _types_mapper(t: pa.DataType) -> Any:
    global _MAPPING
    if _MAPPING is None:
        import pandas as pd

        _MAPPING = {pa.large_string(): pd.StringDtype(), pa.string(): pd.StringDtype(),
                    pa.int64(): pd.Int64Dtype(), pa.float64(): pd.Float64Dtype()}
    return _MAPPING.get(t)


class Reuse:
    """``mask[pos]``: row ``pos`` is answered by the checkpoint (``use``: the same as a numpy array);
    ``stored``: the result columns of every row (NA where not reused), positionally aligned, as a
    pandas frame. ``keys`` are distinct (a frame's index is unique)."""

    def __init__(self, path: str | os.PathLike, keys: Sequence[str], rids: Sequence[str | None],
                 retry_failed: bool | tuple[str, ...]) -> None:
        table = _read_all(os.fspath(path), ["rid", "status", *RESULT_COLUMNS])
        n = len(keys)
        if table.num_rows == 0:
            self.use = np.zeros(n, dtype=bool)
            self.mask = [False] * n
            self.count = 0
            self.stored = None
            return
        # Indices below are rows of ``table`` as read; ``newest`` (latest first) is built only when needed.
        seq = table["seq"].to_numpy()
        newest = _Newest(seq)
        want_rids = pa.array(rids, type=table["rid"].type)
        at = _current_rows(table["key"], pa.array(keys, type=table["key"].type), newest)  # -1: not stored
        stored = at >= 0
        identity = bool(stored.all()) and n == table.num_rows and bool(np.array_equal(at, np.arange(n)))
        rid_at = table["rid"] if identity else table["rid"].take(_indices(at))
        status = table["status"] if identity else table["status"].take(_indices(at))
        same = pc.fill_null(pc.equal(rid_at, want_rids), False)
        is_ok = pc.fill_null(pc.equal(status, OK), False)
        use = _bools(pc.and_(same, is_ok)).copy()
        source = at
        # stored failures of the same request: kept if permanent, unless asked to retry them
        failed_same = np.flatnonzero(_bools(pc.and_(same, pc.invert(is_ok))))
        if len(failed_same):
            rows = pa.array(source[failed_same])
            errors = table["error"].take(rows).to_pylist()
            codes = table["error_code"].take(rows).to_pylist()
            for pos, err, code in zip(failed_same.tolist(), errors, codes):
                rerun = retry_failed is True or is_transient(err) or (bool(retry_failed) and code in retry_failed)
                use[pos] = not rerun
        # an identical request answered for another key: the newest ok row holding it
        missing = np.flatnonzero(~use & _bools(pc.is_valid(want_rids)))
        if len(missing):
            order = newest.order()
            ok_rows_pos = order[_bools(pc.fill_null(pc.equal(table["status"], OK), False))[order]]
            hit = pc.index_in(want_rids.take(pa.array(missing)),
                              value_set=table["rid"].take(pa.array(ok_rows_pos)))
            found = _bools(pc.is_valid(hit))
            if found.any():
                hit_pos = hit.filter(pc.is_valid(hit)).to_numpy()
                source = source.copy()
                use[missing[found]] = True
                source[missing[found]] = ok_rows_pos[hit_pos]
        results = table.select(list(RESULT_COLUMNS))
        if not (identity and use.all()):
            results = results.take(_indices(np.where(use, source, -1)))
        self.stored = results.to_pandas(types_mapper=_types_mapper, ignore_metadata=True)
        self.use = use
        self.mask = use.tolist()
        self.count = int(use.sum())


class _Newest:
    """The table's rows latest first (by seq), computed once, on demand."""

    def __init__(self, seq: np.ndarray) -> None:
        self.seq = seq
        self._order: np.ndarray | None = None

    def order(self) -> np.ndarray:
        if self._order is None:
            seq = self.seq
            if len(seq) > 1 and bool(np.all(seq[1:] > seq[:-1])):
                self._order = np.arange(len(seq) - 1, -1, -1)
            else:
                self._order = np.argsort(-seq, kind="stable")
        return self._order


def _current_rows(stored: pa.ChunkedArray, keys: pa.Array, newest: _Newest) -> np.ndarray:
    """Per key: the row of ``stored`` holding its latest write (highest seq), or -1.

    When the stored keys are the frame's keys, each once (one run's parts, in frame order; or a
    compacted checkpoint, sorted by key, plus any later parts), they are matched by comparing them,
    in frame order or both sorted, not by a hash join: each key is stored once, so that row is its
    latest. Anything else: a hash lookup over the rows latest first."""
    n = len(keys)
    if len(stored) == n and n:
        if pc.all(pc.equal(stored, keys)).as_py():
            return np.arange(n, dtype=np.int64)
        flat = stored.combine_chunks()
        by_stored = None if pc.all(pc.less(flat[:-1], flat[1:])).as_py() else pc.sort_indices(flat)
        by_key = pc.sort_indices(keys)
        if pc.all(pc.equal(keys.take(by_key), flat if by_stored is None else flat.take(by_stored))).as_py():
            at = np.empty(n, dtype=np.int64)
            at[by_key.to_numpy()] = np.arange(n, dtype=np.int64) if by_stored is None else by_stored.to_numpy()
            return at
    order = newest.order()
    hit = pc.index_in(keys, value_set=stored.take(pa.array(order)))
    return np.where(_bools(pc.is_valid(hit)), order[pc.fill_null(hit, 0).to_numpy()], -1)


def _indices(at: np.ndarray) -> pa.Array:
    """``at`` as take() indices, -1 as null (a null row)."""
    return pa.array(at, type=pa.int64(), mask=at < 0)


def _bools(arr: Any) -> np.ndarray:
    return arr.to_numpy(zero_copy_only=False)
