"""The read side of a checkpoint: ``read_rows`` (the one reader of stored rows), ``load_checkpoint``,
``checkpoint_summary``.

Readers take no lock: they work while a run writes and right after a crash (journal rows included),
skip unreadable parts with a warning (only the writer moves them aside), and list the directory again
when a writer publishes or compacts under them.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import files as F
from . import meta as M
from ..records import OK, RESULT_COLUMNS
from ..exceptions import CheckpointError


def read_rows(dirpath: str, columns: Sequence[str], where: Any = None,
              on_corrupt: Callable[[str, str, str], None] | None = None) -> pa.Table:
    """Every stored row (parts and journals, superseded attempts included) matching ``where`` (a
    pyarrow expression over ``columns``), with ``key`` and ``seq`` always among the columns.

    The one policy for a damaged part: it is left out (its rows count as not done, so they are re-run)
    and ``on_corrupt(dirpath, name, reason)`` is told: by default a warning (read-only readers never
    move a file); a run, which holds the lock, passes its store's ``quarantine``. Lists the directory
    again when a writer publishes or compacts between the listing and the read."""
    columns = list(dict.fromkeys(["key", "seq", *columns]))
    for attempt in range(10):
        parts, journals, _ = F.scan(dirpath)
        tables: list[pa.Table] = []
        try:
            for name in parts:
                try:
                    tables.append(F.read_part(os.path.join(dirpath, name), columns, where))
                except F.CorruptPart as exc:
                    (on_corrupt or _skip)(dirpath, name, str(exc))
            for name in journals:
                table = F.journal_table(os.path.join(dirpath, name)).select(columns)
                tables.append(table if where is None else table.filter(where))
        except FileNotFoundError:
            continue  # a writer flushed or compacted between the listing and the read: list again
        if not tables:
            return F.empty_table(columns)
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    raise CheckpointError(f"checkpoint {dirpath} kept changing while being read; try again")


def _skip(dirpath: str, name: str, reason: str) -> None:
    F.warn(f"checkpoint {dirpath}: part {name} is unreadable ({reason}); skipping it "
           f"(its rows count as not done and will be re-run)")


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
    table = F.current(read_rows(path, columns))
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
    table = F.current(read_rows(path, ["status", "error_code", *sums]))
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
