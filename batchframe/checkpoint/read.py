"""The read side of a checkpoint: what ``done()`` returns, ``load_checkpoint``, ``checkpoint_summary``.

Readers take no lock: they work while a run writes and right after a crash (journal rows included),
skip unreadable parts with a warning (only the writer moves them aside), and list the directory again
when a writer publishes or compacts under them.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import files as F
from . import meta as M
from . import superseded as S
from ..records import FAILED, OK, RESULT_COLUMNS
from ..exceptions import CheckpointError


@dataclasses.dataclass(frozen=True, slots=True)
class StoredRow:
    """What resume needs per key: the request hash answered, and how it ended."""

    rid: str
    status: str  # "ok" | "failed"
    error_code: str | None
    error: str | None = None  # the stored error message (None for ok rows)


class DoneRows(Mapping[str, StoredRow]):
    """The latest stored outcome per key: a read-only ``Mapping[str, StoredRow]`` (what ``done()`` returns).

    Not a ``dict``: a dict of 1,000,000 ``StoredRow`` takes ~2 s to build, this ~0.5 s. Ok rows are held
    as their rid alone and a ``StoredRow`` is made on lookup (``done[key]``, ``done.get(key)``); failed
    rows are held as ``StoredRow``. Iterating ``items()``/``values()`` makes one ``StoredRow`` per key
    (~1 µs each); ``is_ok``, ``rid_of``, ``ok_by_rid`` and ``failed`` answer the resume questions
    without that.
    """

    __slots__ = ("_d",)

    def __init__(self, by_key: dict[str, Any]) -> None:
        self._d = by_key  # key -> rid (str) when ok, else a StoredRow

    def __getitem__(self, key: str) -> StoredRow:
        v = self._d[key]
        return StoredRow(v, OK, None) if type(v) is str else v

    def get(self, key: str, default: Any = None) -> Any:
        v = self._d.get(key)
        if v is None:
            return default
        return StoredRow(v, OK, None) if type(v) is str else v

    def __contains__(self, key: object) -> bool:
        return key in self._d

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __repr__(self) -> str:
        return f"<DoneRows {len(self._d)} keys, {len(self.failed())} failed>"

    def rid_of(self, key: str) -> str | None:
        """The request hash stored for ``key`` (ok or failed), or None."""
        v = self._d.get(key)
        return v if v is None or type(v) is str else v.rid

    def is_ok(self, key: str, rid: str) -> bool:
        """True when ``key``'s latest stored row answered request ``rid`` successfully."""
        return self._d.get(key) == rid  # a StoredRow never equals a str

    def ok_by_rid(self) -> dict[str, str]:
        """rid -> one key whose latest row answered it successfully (to reuse an answer across rows)."""
        return {v: k for k, v in self._d.items() if type(v) is str}

    def failed(self) -> dict[str, StoredRow]:
        """key -> StoredRow for keys whose latest row failed."""
        return {k: v for k, v in self._d.items() if type(v) is not str}


def _done_rows(tables: list[pa.Table]) -> DoneRows:
    if not tables:
        return DoneRows({})
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    if len(tables) > 1:  # one part is either in seq order (flushed) or unique per key (compacted)
        seq = table["seq"].to_numpy()
        if len(seq) > 1 and not bool(np.all(seq[1:] > seq[:-1])):
            table = table.take(np.argsort(seq, kind="stable"))
    values: list[Any] = table["rid"].to_pylist()
    not_ok = pc.fill_null(pc.not_equal(table["status"], OK), True)
    where = pc.indices_nonzero(not_ok)
    if len(where):
        sub = table.take(where)
        for i, rid, status, code, err in zip(where.to_pylist(), sub["rid"].to_pylist(),
                                              sub["status"].to_pylist(), sub["error_code"].to_pylist(),
                                              sub["error"].to_pylist()):
            values[i] = StoredRow(rid, status or FAILED, code, err)
    return DoneRows(dict(zip(table["key"].to_pylist(), values)))  # later (higher seq) wins


def _read_all(dirpath: str, columns: Sequence[str]) -> pa.Table:
    """Every stored row (parts and journals, superseded attempts included, but not parts compaction
    merged away: see ``superseded``), read-only: corrupt parts are skipped with a warning, never moved.
    Reads again when a writer publishes, compacts or empties parts meanwhile."""
    columns = list(dict.fromkeys(["key", "seq", *columns]))
    for attempt in range(10):
        manifest = S.read(dirpath)  # before listing: a part it names superseded is listed with its heir
        by = manifest.by
        parts, journals, _ = F.scan(dirpath)
        tables: list[pa.Table] = []
        try:
            read_ids, deferred = set(), {}
            for name in parts:
                pid, table = _read_part(dirpath, name, columns, by)
                if table is None:
                    if pid is not None:
                        deferred[pid] = name
                    continue
                read_ids.add(pid)
                tables.append(table)
            for name in S.uncovered(deferred, by, read_ids):  # its heir was not read: read it after all
                pid, table = _read_part(dirpath, name, columns, ())
                if table is not None:
                    tables.append(table)
            for name in journals:
                tables.append(F.journal_table(os.path.join(dirpath, name)).select(columns))
        except FileNotFoundError:
            continue  # a writer flushed between the listing and the read: list again
        if S.read(dirpath).generation != manifest.generation:
            continue  # superseded parts were emptied meanwhile: what was read may lack their rows
        return pa.concat_tables(tables) if tables else F.empty_table(columns)
    raise CheckpointError(f"checkpoint {dirpath} kept changing while being read; try again")


def _read_part(dirpath: str, name: str, columns: list[str], skip) -> tuple[str | None, pa.Table | None]:
    try:
        return F.read_part_or_skip(os.path.join(dirpath, name), columns, skip)
    except F.CorruptPart as exc:
        F.warn(f"checkpoint {dirpath}: part {name} is unreadable ({exc}); skipping it "
               f"(its rows count as not done)")
        return None, None


def _label_index(keys: pa.ChunkedArray | pa.Array) -> tuple[Any, Any]:
    """(pandas Index of the restored labels, object ndarray of the same labels)."""
    import pandas as pd

    from ..rows.keys import label_of

    n = len(keys)
    if n and pc.all(pc.starts_with(keys, "i:")).as_py():
        try:
            ints = pc.cast(pc.utf8_slice_codeunits(keys, 2), pa.int64()).to_numpy()
            return pd.Index(ints), ints.astype(object)
        except pa.ArrowInvalid:
            pass
    if n and pc.all(pc.starts_with(keys, "s:")).as_py():
        labels: Iterable[Any] = pc.utf8_slice_codeunits(keys, 2).to_pylist()
    else:
        labels = [label_of(k) for k in keys.to_pylist()]
    values = np.empty(n, dtype=object)
    for i, label in enumerate(labels):
        values[i] = label
    index = pd.Index(list(values)) if n else pd.Index([], dtype=object)
    return index, values


def _check_readable(path: str) -> None:
    if not os.path.isdir(path):
        raise CheckpointError(f"no checkpoint at {path} (not a directory)")
    meta = M.read_meta(path)
    if meta is None:
        raise CheckpointError(f"{path} is not a batchframe checkpoint (no {M.META})")
    M.check_version(path, meta)


def load_checkpoint(path: str | os.PathLike) -> "Any":
    """The checkpoint as a DataFrame: one current row per key (highest seq), read-only, no lock.

    Works while a run is writing or right after a crash (rows still only in the journal included).
    Columns: key, label (the restored index label, object dtype), rid, the result columns with their
    pandas nullable dtypes, written_at (UTC). Index: the restored labels (a MultiIndex for tuple
    labels). Rows are sorted by label when every label is an int, else by key.
    """
    import pandas as pd

    path = os.fspath(path)
    _check_readable(path)
    columns = ["key", "rid", *RESULT_COLUMNS, "written_at"]
    table = F.current(_read_all(path, columns))
    index, labels = _label_index(table["key"])
    if isinstance(index.dtype, np.dtype) and index.dtype.kind == "i" and len(index) > 1:
        order = np.argsort(index.to_numpy(), kind="stable")
        table, index, labels = table.take(order), index[order], labels[order]
    mapping = {pa.large_string(): pd.StringDtype(), pa.string(): pd.StringDtype(),
               pa.int64(): pd.Int64Dtype(), pa.float64(): pd.Float64Dtype()}
    df = table.select(columns).to_pandas(types_mapper=mapping.get, ignore_metadata=True)
    df.insert(1, "label", pd.Series(labels, dtype=object))
    df.index = index
    return df


def checkpoint_summary(path: str | os.PathLike) -> dict[str, Any]:
    """Counts and sums over the current rows, reading only the columns they need."""
    path = os.fspath(path)
    _check_readable(path)
    sums = ["prompt_tokens", "completion_tokens", "reasoning_tokens", "total_tokens", "cost"]
    table = F.current(_read_all(path, ["status", "error_code", *sums]))
    status = table["status"]
    failed = table.filter(pc.fill_null(pc.not_equal(status, OK), True))
    codes = failed["error_code"].value_counts().to_pylist() if failed.num_rows else []
    out: dict[str, Any] = {
        "rows": table.num_rows,
        "ok": table.num_rows - failed.num_rows,
        "failed": failed.num_rows,
        "by_error_code": {c["values"]: c["counts"] for c in codes},
    }
    for name in sums:
        total = pc.sum(table[name]).as_py() if table.num_rows else None
        out[name] = total if total is not None else (0 if name != "cost" else None)
    return out
