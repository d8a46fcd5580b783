"""Reading the CLI's tables: CSV, TSV, JSONL and Parquet, a file or a directory, in batches.

``open_source(path)`` checks the input and scans what it needs up front, before any request is sent:
the files (a directory's files of one format, sorted by path; names starting with ``.`` or ``_`` and
batchframe checkpoints are skipped), one column schema for all of them and the row count. Parquet
reads both from the footers. CSV, TSV and JSONL are read once to fix each column's type over the
whole file (a streaming reader infers types from its first block, so a column that looks numeric
for a megabyte and then holds text would fail halfway through a run) and to count the rows.

``Source.batches(n)`` then yields ``pyarrow.Table`` batches of ``n`` rows (the last one shorter), in
file and row order, all with the source's schema; ``to_frame`` turns one into pandas the same way
whatever the batch holds (integers and booleans as nullable Int64 / boolean: a batch without nulls
and one with nulls give the same dtype). ``FileRows`` hands the batches to a run as its source.

Type rules for text formats: a CSV column is int64, float64, bool or else text (dates stay text, as
in ``pandas.read_csv``); only an empty field is null. A JSONL field keeps its JSON type, int and
float merge to float; a field mixing text and numbers is refused with the line's file.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd
import pyarrow as pa

from .text import csv_scanner, csv_tables, jsonl_scan, jsonl_tables
from ..exceptions import ConfigError
from ..records import RowBatch
from ..rows.keys import index_keys, position_keys

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
           ".pq": "parquet"}
_READ_ERRORS = (OSError, pa.ArrowException, ValueError, UnicodeDecodeError)
_INT_PANDAS = {pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
               pa.int64(): pd.Int64Dtype(), pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
               pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype(), pa.bool_(): pd.BooleanDtype()}


def format_of(path: str | os.PathLike, given: str | None = None, *, flag: str = "--format") -> str:
    if given:
        if given not in set(FORMATS.values()):
            raise ConfigError(f"unknown format {given!r}; use one of csv, tsv, jsonl, parquet")
        return given
    p = Path(path)
    if p.is_dir():
        exts = {f.suffix.lower() for f in _walk(p)}
        fmts = {FORMATS[e] for e in exts if e in FORMATS}
        if len(fmts) != 1:
            raise ConfigError(f"{path}: a directory must hold files of one known format "
                              f"(csv, tsv, jsonl, parquet); found {sorted(exts) or 'none'}")
        return fmts.pop()
    ext = p.suffix.lower()
    if ext not in FORMATS:
        raise ConfigError(f"{path}: unknown format {ext or '(no extension)'!r}; "
                          f"use .csv, .tsv, .jsonl or .parquet, or pass {flag}")
    return FORMATS[ext]


def _walk(root: Path) -> list[Path]:
    """A directory's data files, recursively, sorted; hidden, ``_`` and checkpoint directories skipped."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_"))
                             and not os.path.exists(os.path.join(dirpath, d, "_batchframe.json")))
        out += [Path(dirpath, f) for f in filenames if not f.startswith((".", "_"))]
    return sorted(out)


@dataclasses.dataclass(frozen=True)
class Source:
    """An input scanned and checked: its files, one schema, its row count."""

    path: str
    fmt: str
    files: tuple[str, ...]
    schema: pa.Schema
    rows: int

    @property
    def columns(self) -> list[str]:
        return self.schema.names

    def fingerprint(self) -> dict:
        """What a checkpoint records to recognise its input (compared: path, columns, rows)."""
        files = []
        for f in self.files[:1000]:
            st = os.stat(f)
            files.append([os.path.relpath(f, self.path) if f != self.path else os.path.basename(f),
                          st.st_size, st.st_mtime_ns])
        return {"path": self.path, "format": self.fmt, "columns": self.columns,
                "types": [str(t) for t in self.schema.types], "rows": self.rows, "files": files}

    def batches(self, rows: int, columns: Sequence[str] | None = None) -> Iterator[pa.Table]:
        """Tables of ``rows`` rows (the last one shorter), in order, with this source's schema."""
        schema = self.schema if columns is None else pa.schema([self.schema.field(c) for c in columns])
        pending: list[pa.Table] = []
        have = 0
        for piece in self._pieces(schema):
            pending.append(piece)
            have += piece.num_rows
            while have >= rows:
                table = pa.concat_tables(pending) if len(pending) > 1 else pending[0]
                yield table.slice(0, rows).combine_chunks()
                rest = table.slice(rows)
                pending, have = ([rest], rest.num_rows) if rest.num_rows else ([], 0)
        if have:
            yield (pa.concat_tables(pending) if len(pending) > 1 else pending[0]).combine_chunks()

    def _pieces(self, schema: pa.Schema) -> Iterator[pa.Table]:
        for f in self.files:
            try:
                if self.fmt == "parquet":
                    yield from _parquet_pieces(f, schema)
                elif self.fmt == "jsonl":
                    yield from (_conform(t, schema) for t in jsonl_tables(f, schema))
                else:
                    yield from (_conform(t, schema) for t in csv_tables(f, self.fmt, schema))
            except ConfigError:
                raise
            except _READ_ERRORS as exc:
                raise ConfigError(f"{f}: cannot read as {self.fmt}: {_short(exc)}") from None


def open_source(path: str | os.PathLike, fmt: str | None = None) -> Source:
    """Check and scan an input (see the module doc). Raises ConfigError with a one-line reason."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{path}: no such file or directory")
    fmt = format_of(p, fmt)
    files = [str(f) for f in _walk(p) if FORMATS.get(f.suffix.lower()) == fmt] if p.is_dir() else [str(p)]
    if not files:
        raise ConfigError(f"{path}: no {fmt} files in this directory")
    if not all(os.access(f, os.R_OK) for f in files):
        raise ConfigError(f"{path}: not readable (permission denied)")
    schemas, rows = [], 0
    for f in files:
        try:
            schema, n = _SCANNERS[fmt](f)
        except ConfigError:
            raise
        except _READ_ERRORS as exc:
            raise ConfigError(f"{f}: cannot read as {fmt}: {_short(exc)}") from None
        schemas.append(schema)
        rows += n
    return Source(str(p.resolve()), fmt, tuple(str(Path(f).resolve()) for f in files),
                  _merge(schemas, files), rows)


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _merge(schemas: list[pa.Schema], files: list[str]) -> pa.Schema:
    names = schemas[0].names
    for s, f in zip(schemas[1:], files[1:]):
        if s.names != names:
            raise ConfigError(f"{f}: its columns {s.names} differ from {files[0]}'s {names}; "
                              "the files of a directory must have the same columns")
    fields = []
    for i, name in enumerate(names):
        types = {s.types[i] for s in schemas}
        fields.append(pa.field(name, types.pop() if len(types) == 1 else _widen(types, name)))
    return pa.schema(fields)


def _widen(types: set, name: str) -> pa.DataType:
    types = {t for t in types if not pa.types.is_null(t)}
    if len(types) <= 1:
        return types.pop() if types else pa.null()
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in types):
        return pa.float64() if any(pa.types.is_floating(t) for t in types) else pa.int64()
    if all(pa.types.is_string(t) or pa.types.is_large_string(t) for t in types):
        return pa.large_string()
    raise ConfigError(f"column {name!r} has different types in different files: "
                      f"{sorted(map(str, types))}")


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    table = table.select(schema.names)
    if table.schema.equals(schema, check_metadata=False):
        return table.replace_schema_metadata(None)
    return table.cast(schema)


# ---- Parquet ------------------------------------------------------------------------------------

def _parquet_scan(f: str) -> tuple[pa.Schema, int]:
    import pyarrow.parquet as pq

    md = pq.read_metadata(f)
    return md.schema.to_arrow_schema().remove_metadata(), md.num_rows


def _parquet_pieces(f: str, schema: pa.Schema) -> Iterator[pa.Table]:
    import pyarrow.parquet as pq

    # Buffered, not pre-buffered, one thread: pages are read as needed, never a whole row group at
    # once (threaded decoding holds memory that grows with the row group: 1M rows, +30 MiB measured)
    with pq.ParquetFile(f, buffer_size=1 << 20, pre_buffer=False) as pf:
        for rb in pf.iter_batches(batch_size=16_384, columns=schema.names, use_threads=False):
            yield _conform(pa.Table.from_batches([rb]), schema)


_SCANNERS = {"parquet": _parquet_scan, "csv": csv_scanner("csv"), "tsv": csv_scanner("tsv"),
             "jsonl": jsonl_scan}


# ---- pandas -------------------------------------------------------------------------------------

def to_frame(table: pa.Table, start: int = 0) -> pd.DataFrame:
    """One batch as pandas, index ``start..start+n``; the dtypes never depend on the batch's values."""
    df = table.to_pandas(types_mapper=_INT_PANDAS.get, ignore_metadata=True)
    df.index = pd.RangeIndex(start, start + len(df))
    return df


class FileRows:
    """A scanned input as a run's source: ``RowBatch``es of ``batch_rows`` rows (pandas frames for the
    rows stage, the Arrow table kept for the sink), keyed by position or by ``id_col``."""

    def __init__(self, source: Source, *, batch_rows: int, id_col: str | None = None) -> None:
        self.source, self.batch_rows, self.id_col = source, batch_rows, id_col
        self.rows = source.rows
        self.columns = source.columns

    def batches(self) -> Iterator[RowBatch]:
        start = 0
        for table in self.source.batches(self.batch_rows):
            yield self._batch(table, start)
            start += table.num_rows

    def _batch(self, table: pa.Table, start: int) -> RowBatch:
        frame = to_frame(table, start)
        keys = (index_keys(pd.Index(frame[self.id_col])) if self.id_col is not None
                else position_keys(start, len(frame)))
        return RowBatch(start, frame, keys, table)

    def empty(self) -> RowBatch:
        return self._batch(self.source.schema.empty_table(), 0)

    def fingerprint(self) -> dict:
        return self.source.fingerprint()
