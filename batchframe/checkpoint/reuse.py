"""Resume: which rows of a batch the checkpoint already answered, and their stored columns.

The decision, made in one place (``_decide``) for every front door: a row is reused when the
checkpoint's latest row for its key answered the same request hash and succeeded, or failed for good
(unless the caller asks to retry that failure: ``retry_failed=True`` or a tuple of error codes;
transient failures, retries exhausted, are always re-run); or, failing that, when another key's latest
row answered the same request successfully (an identical request: a copy, which costs nothing).

Two ways to get the stored rows the decision needs, nothing else different:

- ``whole=True`` (an in-memory frame, one batch): the whole checkpoint is read once, in one Arrow
  pass. When the checkpoint holds each of the frame's keys once (one run's parts in frame order, or a
  compacted checkpoint sorted by key), rows are matched by comparing keys, not by a hash join, and
  when every row is reused as stored the columns go to pandas as read (a 1,000,000-row resume in ~2 s).
- ``whole=False`` (streams of any length): two sorted ``uint64`` arrays are kept from the checkpoint
  as it was when the run started, the hashes of the stored keys and of the requests answered ok (at
  most 16 bytes a stored row); per batch only the keys and requests whose hash is there are read back,
  with a filter pushed down to the Parquet row groups.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..records import OK, RESULT_COLUMNS, Result, is_transient
from .hashes import hashes
from .read import read_rows

_DECIDE = ["rid", "status", *RESULT_COLUMNS]
_MAPPING: dict | None = None


def _types_mapper(t: pa.DataType) -> Any:
    global _MAPPING
    if _MAPPING is None:
        import pandas as pd

        _MAPPING = {pa.large_string(): pd.StringDtype(), pa.string(): pd.StringDtype(),
                    pa.int64(): pd.Int64Dtype(), pa.float64(): pd.Float64Dtype()}
    return _MAPPING.get(t)


@dataclasses.dataclass
class Reused:
    """``use[pos]``: row ``pos`` of the batch is answered by the checkpoint (``count`` of them);
    ``stored``: every row's stored result columns as a pandas frame, positionally aligned (NA where
    not reused)."""

    use: np.ndarray
    stored: Any
    count: int


class Reuse:
    """Built once per run, after the checkpoint is opened; ``lookup(keys, rids)`` once per batch."""

    def __init__(self, path: str | os.PathLike, retry_failed: bool | tuple[str, ...], *, whole: bool,
                 on_corrupt: Callable[[str, str, str], None] | None = None) -> None:
        self.path = os.fspath(path)
        self.retry = retry_failed
        self.whole = whole
        self._on_corrupt = on_corrupt
        self._keys = self._ok_rids = np.empty(0, dtype=np.uint64)
        if not whole:
            table = self._read(["rid", "status"])
            self._keys = np.unique(hashes(table["key"].to_pylist()))
            ok = table.filter(pc.fill_null(pc.equal(table["status"], OK), False))
            self._ok_rids = np.unique(hashes(ok["rid"].to_pylist()))

    def _read(self, columns: Sequence[str], where: Any = None) -> pa.Table:
        return read_rows(self.path, columns, where, on_corrupt=self._on_corrupt)

    def lookup(self, keys: Sequence[str], rids: Sequence[str | None]) -> Reused | None:
        """The rows the checkpoint answers, or None when it answers none of them."""
        if self.whole:
            table = self._read(_DECIDE)
        else:
            table = self._candidates(keys, rids)
            if table is None:
                return None
        reused = _decide(table, keys, rids, self.retry)
        return reused if reused is not None and reused.count else None

    def _candidates(self, keys: Sequence[str], rids: Sequence[str | None]) -> pa.Table | None:
        """The stored rows that may decide this batch: every row of its keys, and the ok rows of its
        requests (found by hash, confirmed by the filter)."""
        where = None
        if len(self._keys):
            hit = np.isin(hashes(list(keys)), self._keys)
            wanted = [k for k, h in zip(keys, hit.tolist()) if h]
            if wanted:
                field = pc.field("key")
                where = (field >= min(wanted)) & (field <= max(wanted)) & field.isin(wanted)
        if len(self._ok_rids):
            present = [r for r in rids if r is not None]
            hit = np.isin(hashes(present), self._ok_rids)
            wanted = list({r for r, h in zip(present, hit.tolist()) if h})
            if wanted:
                by_rid = pc.field("rid").isin(wanted) & (pc.field("status") == OK)
                where = by_rid if where is None else (where | by_rid)
        if where is None:
            return None
        return self._read(_DECIDE, where)

    def answers(self, rids: Sequence[str]) -> dict[str, tuple[Result, float | None]]:
        """The latest stored result (and its cost) of each request in ``rids`` that has one: a run
        reads back an answer it gave earlier and no longer holds in memory (a copy in a later batch)."""
        table = self._read(["rid", *RESULT_COLUMNS], pc.field("rid").isin(list(set(rids))))
        if not table.num_rows:
            return {}
        table = table.take(pc.sort_indices(table, sort_keys=[("seq", "ascending")]))
        fields = [f for f in RESULT_COLUMNS if f in Result.__dataclass_fields__]
        out = {}
        for row in table.select(["rid", *fields, "cost"]).to_pylist():  # later (higher seq) wins
            cost = row.pop("cost")
            row["attempts"] = row["attempts"] or 0
            out[row["rid"]] = (Result(**row), cost)
        return out


def rerun_failed(error: str | None, code: str | None, retry: bool | tuple[str, ...]) -> bool:
    """A stored failure is sent again: retries ran out (transient), or the caller asks for it."""
    return retry is True or is_transient(error) or (bool(retry) and code in retry)


def _decide(table: pa.Table, keys: Sequence[str], rids: Sequence[str | None],
            retry_failed: bool | tuple[str, ...]) -> Reused | None:
    """The decision (see the module doc) over ``table``: stored rows with key, seq, rid, status and
    the result columns, holding at least every row that could decide these keys and requests."""
    n = len(keys)
    if table.num_rows == 0 or n == 0:
        return None
    newest = _Newest(table["seq"].to_numpy())
    want_rids = pa.array(rids, type=table["rid"].type)
    at = _current_rows(table["key"], pa.array(keys, type=table["key"].type), newest)  # -1: not stored
    identity = bool((at >= 0).all()) and n == table.num_rows and bool(np.array_equal(at, np.arange(n)))
    rid_at = table["rid"] if identity else table["rid"].take(_indices(at))
    status = table["status"] if identity else table["status"].take(_indices(at))
    same = pc.fill_null(pc.equal(rid_at, want_rids), False)
    is_ok = pc.fill_null(pc.equal(status, OK), False)
    use = _bools(pc.and_(same, is_ok)).copy()
    source = at
    failed_same = np.flatnonzero(_bools(pc.and_(same, pc.invert(is_ok))))
    if len(failed_same):  # stored failures of the same request: kept if permanent, unless asked to retry
        rows = pa.array(source[failed_same])
        errors = table["error"].take(rows).to_pylist()
        codes = table["error_code"].take(rows).to_pylist()
        for pos, err, code in zip(failed_same.tolist(), errors, codes):
            use[pos] = not rerun_failed(err, code, retry_failed)
    missing = np.flatnonzero(~use & _bools(pc.is_valid(want_rids)))
    copies = np.zeros(0, dtype=np.int64)
    if len(missing):  # an identical request answered for another key: the newest ok row holding it
        order = newest.order()
        ok_rows_pos = order[_bools(pc.fill_null(pc.equal(table["status"], OK), False))[order]]
        hit = pc.index_in(want_rids.take(pa.array(missing)), value_set=table["rid"].take(pa.array(ok_rows_pos)))
        found = _bools(pc.is_valid(hit))
        if found.any():
            source = source.copy()
            copies = missing[found]
            use[copies] = True
            source[copies] = ok_rows_pos[hit.filter(pc.is_valid(hit)).to_numpy()]
    count = int(use.sum())
    if not count:
        return None
    results = table.select(list(RESULT_COLUMNS))
    if not (identity and use.all()):
        results = results.take(_indices(np.where(use, source, -1)))
    stored = results.to_pandas(types_mapper=_types_mapper, ignore_metadata=True)
    if len(copies):  # another key's answer: billed once, for that key, so a copy costs nothing here
        cost = stored["cost"].array
        cost[copies] = cost[copies] * 0
    return Reused(use, stored, count)


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

    When the stored keys are the batch's keys, each once (one run's parts, in frame order; or a
    compacted checkpoint, sorted by key), they are matched by comparing them, in order or both sorted,
    not by a hash join: each key is stored once, so that row is its latest. Anything else: a hash
    lookup over the rows latest first."""
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
