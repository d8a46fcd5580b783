"""One input batch of the streaming run: its rows as requests, and its rows back as output columns.

The per-row rules are ``complete()``'s own functions: ``_frame.row_messages`` (prompt, template,
messages, system, images, empty prompts), ``_run._keys`` (row keys), ``RequestSpec.hasher`` (request
hashes), ``_frame.result_columns`` (typed result columns). Row keys are the global row position
(``i:<n>``, what ``complete()`` uses for a frame with a default index) or the ``--id-col`` value.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from ..rows.messages import result_columns, row_messages
from ..io.sources import Source, to_frame
from ..records import Result
from .run import _keys
from ..exceptions import ConfigError


@dataclasses.dataclass(frozen=True, kw_only=True)
class Rows:
    """How rows become requests (everything the hash depends on is in ``hasher``)."""

    prompt_col: str | None = None
    template: str | None = None
    messages_col: str | None = None
    system: str | None = None
    image_col: str | None = None
    id_col: str | None = None
    hasher: Callable[[list], str] | None = None
    dedupe: bool = True

    def kwargs(self) -> dict:
        return dict(prompt_col=self.prompt_col, template=self.template, messages_col=self.messages_col,
                    system=self.system, image_col=self.image_col)


class Batch:
    """Rows ``start .. start+n`` of the input while they are open (not yet written)."""

    __slots__ = ("start", "table", "frame", "keys", "row_errors", "fresh", "costs", "stored_pos",
                 "stored", "remaining")

    def __init__(self, start: int, table: pa.Table, frame: pd.DataFrame, keys: list[str],
                 row_errors: dict[int, str]) -> None:
        self.start = start
        self.table = table
        self.frame = frame
        self.keys = keys
        self.row_errors = row_errors
        n = len(keys)
        self.fresh: list[Result | None] = [None] * n
        self.costs: list[float | None] = [None] * n
        self.stored_pos: list[int] = []
        self.stored: pd.DataFrame | None = None
        self.remaining = 0  # rows waiting for an answer

    @property
    def n(self) -> int:
        return len(self.keys)


def prepare(table: pa.Table, start: int, rows: Rows) -> tuple[Batch, list, list]:
    """A batch, and per row its messages (or None) and request hash (or None)."""
    frame = to_frame(table, start)
    messages, row_errors = row_messages(request_frame(frame, rows), **rows.kwargs())
    if rows.id_col is not None:
        keys = _keys(pd.Index(frame[rows.id_col]))
    else:
        keys = [f"i:{p}" for p in range(start, start + len(frame))]
    hasher = rows.hasher
    rids = [hasher(m) if m is not None else None for m in messages]
    if not rows.dedupe:
        rids = [f"{r}.{k}" if r is not None else None for r, k in zip(rids, keys)]
    return Batch(start, table, frame, keys, row_errors), messages, rids


def request_frame(frame: pd.DataFrame, rows: Rows) -> pd.DataFrame:
    """``frame`` as ``row_messages`` wants it: a text ``--messages-col`` holds JSON, decoded here."""
    col = rows.messages_col
    if col is None or not pd.api.types.is_string_dtype(frame[col].dtype):
        return frame
    work = frame.copy(deep=False)
    work[col] = pd.Series([_json(v, col, int(label)) for label, v in zip(frame.index, frame[col].tolist())],
                          index=frame.index, dtype=object)
    return work


def _json(value: Any, col: str, row: int) -> Any:
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise ConfigError(f"row {row}: --messages-col {col!r} holds text that is not JSON: {value!r:.60}; "
                          "it must be a JSON list of {\"role\", \"content\"} objects") from None


def output(b: Batch, names: Mapping[str, str]) -> pd.DataFrame:
    """The batch's input columns and its result columns (same names and dtypes as ``complete()``)."""
    if b.stored is not None and len(b.stored_pos):
        stored = b.stored.set_axis(b.stored_pos, axis=0).reindex(range(b.n))  # NA where not reused
        reused = [False] * b.n
        for p in b.stored_pos:
            reused[p] = True
        cols = result_columns(b.frame.index, b.fresh, b.row_errors, b.costs, names, stored=stored,
                              reused=reused)
    else:
        cols = result_columns(b.frame.index, b.fresh, b.row_errors, b.costs, names)
    return pd.concat([b.frame, cols], axis=1)


def check_ids(source: Source, id_col: str, batch_rows: int) -> None:
    """``--id-col`` must be unique and never empty (checked over the whole input before sending)."""
    seen: list[np.ndarray] = []
    from ..checkpoint.lookup import hashes

    start = 0
    for table in source.batches(batch_rows, [id_col]):
        col = table[id_col]
        if col.null_count:
            first = start + int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise ConfigError(f"--id-col {id_col!r} is empty in row {first}: every row needs an id")
        seen.append(hashes(_keys(pd.Index(to_frame(table)[id_col]))))
        start += table.num_rows
    if not seen:
        return
    allh = np.concatenate(seen)
    uniq, counts = np.unique(allh, return_counts=True)
    if len(uniq) == len(allh):
        return
    dup_h = set(uniq[counts > 1].tolist())
    found: dict[str, int] = {}
    for table in source.batches(batch_rows, [id_col]):
        keys = _keys(pd.Index(to_frame(table)[id_col]))
        for k, h in zip(keys, hashes(keys).tolist()):
            if h in dup_h:
                found[k] = found.get(k, 0) + 1
    dups = [k.split(":", 1)[1] for k, c in found.items() if c > 1][:3]
    if dups:
        raise ConfigError(f"--id-col {id_col!r} has duplicate values (e.g. {dups}); ids key the rows and "
                          "the checkpoint, so they must be unique: fix the column, or drop --id-col to key "
                          "rows by position")


def check_columns(source: Source, rows: Rows, result_names: Sequence[str]) -> None:
    """The bad-input checks ``complete()`` makes, on the schema alone (before anything is read)."""
    cols = source.columns
    empty = source.schema.empty_table()
    row_messages(to_frame(empty), **rows.kwargs())  # missing columns, template fields, image_col
    if rows.prompt_col is not None:
        typ = source.schema.field(rows.prompt_col).type
        if not (pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_null(typ)):
            raise ConfigError(f"--prompt-col {rows.prompt_col!r} holds {typ} values, not text; use "
                              f"--template '{{{rows.prompt_col}}}' to send them as text")
    if rows.id_col is not None and rows.id_col not in cols:
        raise ConfigError(f"--id-col {rows.id_col!r} is not a column; columns: {cols}")
    clash = [c for c in result_names if c in cols]
    if clash:
        raise ConfigError(f"result column(s) {clash} already exist in the input; pass --prefix or --suffix")
