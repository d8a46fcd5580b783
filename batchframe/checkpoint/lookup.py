"""Which rows of a batch a checkpoint already answered, and their stored result columns.

``complete()`` (``_resume.Reuse``) joins every stored key in Arrow and reads the whole
checkpoint back to fill the reused rows. The streaming run cannot afford either for 10M rows, so it
keeps, from the checkpoint as it was when the run started, two sorted ``uint64`` arrays: the hashes
of the stored keys and of the requests answered ok (at most 16 bytes a stored row, nothing for a
fresh checkpoint). For each batch, only keys and requests whose hash is there are looked up in the
checkpoint's files, with a Parquet filter that reads the matching rows and nothing else.

The decision per row is ``complete()``'s (``_resume.Reuse``): the key's current row answered this
exact request (ok, or failed and not asked to re-run), else an ok answer to the same request stored
for another key.
"""

from __future__ import annotations

import mmap
import os
import types
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import files as F
from ..records import OK, RESULT_COLUMNS, Result, is_transient
from ..exceptions import CheckpointError

_COLUMNS = ["key", "rid", "seq", *RESULT_COLUMNS]
_PANDAS = {pa.large_string(): pd.StringDtype(), pa.string(): pd.StringDtype(), pa.int64(): pd.Int64Dtype(),
           pa.float64(): pd.Float64Dtype()}


def hashes(values: Sequence[str]) -> np.ndarray:
    """64-bit hashes of strings (vectorised; a collision only costs a lookup that finds nothing)."""
    if not len(values):
        return np.empty(0, dtype=np.uint64)
    return pd.util.hash_array(np.asarray(values, dtype=object), categorize=False)


def rerun_failed(row: Any, retry: bool | tuple[str, ...]) -> bool:
    """A stored failure is sent again: retries ran out (transient), or the caller asks for it."""
    if retry is True or is_transient(row.error):
        return True
    return bool(retry) and row.error_code in retry


def stored_tables(path: str, columns: list[str], expr: Any = None, stream: bool = False) -> Iterator[pa.Table]:
    """Every stored row (parts and journals) matching ``expr``, read-only; lists the directory
    again when a writer publishes or compacts in between (another process, e.g. during estimate)."""
    import pyarrow.dataset as ds

    for _ in range(10):
        parts, journals, _ = F.scan(path)
        out = []
        try:
            if parts:
                data = ds.dataset([os.path.join(path, p) for p in parts], format="parquet", schema=F.schema())
                if stream:  # the first scan: a batch at a time, never the whole column set at once
                    for rb in data.to_batches(columns=columns, batch_size=65_536):
                        yield pa.Table.from_batches([rb])
                else:
                    out.append(data.to_table(columns=columns, filter=expr))
            for name in journals:
                table = F.journal_table(os.path.join(path, name))
                out.append((table.filter(expr) if expr is not None else table).select(columns))
        except FileNotFoundError:
            continue
        except (pa.ArrowException, OSError) as exc:
            raise CheckpointError(f"checkpoint {path}: cannot read it ({exc}); use another --checkpoint") from None
        yield from out
        return
    raise CheckpointError(f"checkpoint {path} kept changing while being read; try again")


def read_rows(path: str, expr: Any) -> pa.Table:
    tables = list(stored_tables(path, _COLUMNS, expr))
    return pa.concat_tables(tables) if tables else F.empty_table(_COLUMNS)


def fetch_answers(path: str, rids: Sequence[str]) -> dict[str, tuple[Result, float | None]]:
    """The latest stored result (and its cost) of each request in ``rids`` that has one."""
    table = read_rows(path, pc.field("rid").isin(list(set(rids))))
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


class StoredLookup:
    """Built once per run from a checkpoint directory; ``lookup()`` once per batch."""

    def __init__(self, path: str, retry_failed: Any) -> None:
        self.path = path
        self.retry = retry_failed
        keys, ok_rids = [], []
        for table in self._tables(["key", "rid", "status"], stream=True):
            keys.append(hashes(table["key"].to_pylist()))
            ok = table.filter(pc.fill_null(pc.equal(table["status"], OK), False))
            ok_rids.append(hashes(ok["rid"].to_pylist()))
        self.keys = np.unique(np.concatenate(keys)) if keys else np.empty(0, dtype=np.uint64)
        self.ok_rids = np.unique(np.concatenate(ok_rids)) if ok_rids else np.empty(0, dtype=np.uint64)

    def __bool__(self) -> bool:
        return bool(len(self.keys))

    def _tables(self, columns: list[str], expr: Any = None, stream: bool = False) -> Iterator[pa.Table]:
        return stored_tables(self.path, columns, expr, stream)

    def _read(self, expr: Any) -> pa.Table:
        return read_rows(self.path, expr)

    def lookup(self, keys: Sequence[str], rids: Sequence[str | None]) -> tuple[list[int], pd.DataFrame] | None:
        """(positions answered by the checkpoint, their stored result columns in that order), or None."""
        if not self:
            return None
        taken: dict[int, tuple[int, int]] = {}  # position -> (table 0 by key / 1 by request, row)
        cand = np.flatnonzero(np.isin(hashes(keys), self.keys))
        by_key = None
        if len(cand):
            wanted = [keys[i] for i in cand]
            field = pc.field("key")
            by_key = F.current(self._read((field >= min(wanted)) & (field <= max(wanted))
                                          & field.isin(wanted)))
            row_of = {k: i for i, k in enumerate(by_key["key"].to_pylist())}
            srid, status = by_key["rid"].to_pylist(), by_key["status"].to_pylist()
            error, code = by_key["error"].to_pylist(), by_key["error_code"].to_pylist()
            for pos in cand.tolist():
                i = row_of.get(keys[pos])
                if i is None or rids[pos] is None or srid[i] != rids[pos]:
                    continue
                failed = types.SimpleNamespace(error=error[i], error_code=code[i])
                if status[i] == OK or not rerun_failed(failed, self.retry):
                    taken[pos] = (0, i)
        rest = [p for p, r in enumerate(rids) if r is not None and p not in taken]
        by_rid = None
        if rest and len(self.ok_rids):
            hit = np.isin(hashes([rids[p] for p in rest]), self.ok_rids)
            rest = [p for p, h in zip(rest, hit.tolist()) if h]
            if rest:
                wanted = list({rids[p] for p in rest})
                by_rid = self._read(pc.field("rid").isin(wanted) & (pc.field("status") == OK))
                by_rid = by_rid.take(pc.sort_indices(by_rid, sort_keys=[("seq", "ascending")]))
                row_of = {r: i for i, r in enumerate(by_rid["rid"].to_pylist())}  # highest seq wins
                for pos in rest:
                    i = row_of.get(rids[pos])
                    if i is not None:
                        taken[pos] = (1, i)
        if not taken:
            return None
        positions = sorted(taken)
        tables = [t.select(list(RESULT_COLUMNS)) if t is not None else None for t in (by_key, by_rid)]
        offset = tables[0].num_rows if tables[0] is not None else 0
        both = pa.concat_tables([t for t in tables if t is not None])
        rows = [taken[p][1] + (offset if taken[p][0] else 0) for p in positions]
        stored = both.take(pa.array(rows, type=pa.int64()))
        return positions, stored.to_pandas(types_mapper=_PANDAS.get, ignore_metadata=True)


MAX_RUN = 1 << 20
_OWN_MAPPING = 1 << 16  # values (512 KiB): a run this large gets an anonymous mapping of its own
_BLOCK = 1 << 16


def _new_run(n: int) -> np.ndarray:
    """Room for ``n`` hashes. A large run lives in an anonymous mapping of its own, unmapped the
    moment the run is dropped. Through malloc, every merge would free multi-MiB arrays, and glibc
    raises its mmap threshold to the largest chunk freed (up to 32 MiB): from then on everything
    smaller (the next merges, every batch's arrays, the worker threads' buffers) comes from the
    heaps, which keep what is freed. With 1M answers that was +45 MiB resident (and +27 MiB at the
    merge), growing with the row count; like this it is the runs' 8 bytes a value."""
    if n < _OWN_MAPPING:
        return np.empty(n, dtype=np.uint64)
    return np.frombuffer(mmap.mmap(-1, n * 8), dtype=np.uint64)


def _merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sorted union of two sorted runs, with nothing the size of the result but the result (a
    value added twice, e.g. a request answered twice, is rare: then a second pass drops it)."""
    out = _new_run(len(a) + len(b))
    np.concatenate([a, b], out=out)
    out.sort()
    n = len(out)
    for i in range(1, n, _BLOCK):
        j = min(i + _BLOCK, n)
        if (out[i:j] == out[i - 1:j - 1]).any():
            uniq = np.unique(out)
            out = _new_run(len(uniq))
            out[:] = uniq
            break
    return out


class SeenHashes:
    """A set of 64-bit hashes at 8 bytes each: sorted numpy runs (merged as they grow, so a lookup
    searches a handful) plus a small set of recent ones (``batchframe estimate`` counts distinct
    requests over any number of rows with it; a run remembers the requests it answered)."""

    def __init__(self, flush_at: int = 1 << 16) -> None:
        self._runs: list[np.ndarray] = []
        self._recent: set[int] = set()
        self._flush_at = flush_at
        self._size = 0

    def __len__(self) -> int:
        return self._size + len(self._recent)

    def contains(self, values: np.ndarray) -> list[bool]:
        known = np.zeros(len(values), dtype=bool)
        for run in self._runs:
            at = np.minimum(np.searchsorted(run, values), len(run) - 1)
            known |= run[at] == values
        recent = self._recent
        return [k or v in recent for v, k in zip(values.tolist(), known.tolist())]

    def add(self, values: np.ndarray) -> None:
        self._recent.update(values.tolist())
        self._flush()

    def first_seen(self, values: np.ndarray) -> list[bool]:
        """Per value: not seen before (earlier in ``values`` included); all are added."""
        out, recent = [], self._recent
        for v, known in zip(values.tolist(), self.contains(values)):
            new = not known and v not in recent
            if new:
                recent.add(v)
            out.append(new)
        self._flush()
        return out

    def _flush(self) -> None:
        recent = self._recent
        if len(recent) < self._flush_at:
            return
        run = np.sort(np.fromiter(recent, dtype=np.uint64, count=len(recent)))
        recent.clear()
        runs = self._runs
        runs.append(run)
        # sizes halve down the list (a lookup searches a handful of runs), up to MAX_RUN values a
        # run: a merge never holds more than the two runs and the result (at most 16 MiB)
        while len(runs) > 1 and 2 * len(runs[-1]) >= len(runs[-2]) and len(runs[-2]) < MAX_RUN:
            last = runs.pop()
            runs[-1] = _merge(runs[-1], last)
        self._size = sum(len(r) for r in runs)
