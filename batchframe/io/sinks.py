"""Writing the CLI's output in batches: a hidden temp file next to the target, renamed at the end.

``TableWriter(path, fmt)``: ``write(inputs, frame)`` appends one batch (``frame``: every output column
in pandas; ``inputs``: the same rows' input columns as Arrow, so Parquet keeps their exact types);
``commit()`` closes and renames ``.NAME.<pid>.tmp`` over ``NAME``; ``abort()`` deletes the temp file.
Until ``commit()`` the target is untouched: an interrupted or crashed run never leaves half a file
under the output's name (only a hidden temp file, which the next run removes).

Parquet: one ``ParquetWriter``; the schema is fixed by the first batch (input columns keep their
Arrow types, the others come from pandas, with the pandas metadata, so ``pd.read_parquet`` gives the
same dtypes ``complete()`` returns) and later batches are cast to it. CSV / TSV: ``DataFrame.to_csv``
appended (header once). JSONL: ``DataFrame.to_json(orient="records", lines=True)`` appended.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_stale_temps(path: Path) -> None:
    """Delete temp files of this output left by runs that died (their pid is gone)."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.tmp$")
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        m = pattern.match(name)
        if m and not _alive(int(m.group(1))):
            try:
                os.remove(path.parent / name)
            except OSError:
                pass


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FileSink:
    """A run's sink for a file: each batch's input columns (its Arrow table, so Parquet keeps their
    exact types) and result columns, appended in input order; parsed columns added per batch when the
    schema fixes them (a schema-less parse writes a first pass, see ``pipeline.parsed``). A stopped
    run writes nothing more: the output is committed only when every row is in."""

    partial = False

    def __init__(self, writer: "TableWriter", parse: object = None) -> None:
        self.writer = writer
        self.parse = parse

    def write(self, rows, columns: pd.DataFrame) -> None:
        out = pd.concat([rows.frame, columns], axis=1)
        if self.parse is not None:
            if self.parse.two_pass:
                self.parse.observe(out)
            else:
                out = self.parse.add(out)
        self.writer.write(rows.payload, out)


class TableWriter:
    def __init__(self, path: Path, fmt: str, *, fsync: bool = False,
                 types: dict[str, pa.DataType] | None = None) -> None:
        self.path = Path(path)
        self.fmt = fmt
        self.types = dict(types or {})  # columns of nested values: their Arrow types (JSON text in CSV)
        self.fsync = fsync
        self.tmp = temp_path(self.path)
        self.rows = 0
        self._pq = None
        self._schema: pa.Schema | None = None
        self._fh = None
        self._started = False

    def write(self, inputs: pa.Table | None, frame: pd.DataFrame) -> None:
        if not self._started:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._started = True
        if self.fmt == "parquet":
            self._write_parquet(inputs, frame)
        else:
            if self._fh is None:
                self._fh = open(self.tmp, "w", encoding="utf-8", newline="")
            if self.fmt in ("csv", "tsv"):
                frame = self._json_text(frame)
                frame.to_csv(self._fh, sep="\t" if self.fmt == "tsv" else ",", index=False,
                             header=self.rows == 0)
            elif len(frame):
                text = frame.to_json(orient="records", lines=True, force_ascii=False)
                self._fh.write(text if text.endswith("\n") else text + "\n")
        self.rows += len(frame)

    def _json_text(self, frame: pd.DataFrame) -> pd.DataFrame:
        """CSV holds nested values as JSON text."""
        nested = [c for c in frame.columns if c in self.types and not pa.types.is_string(self.types[c])
                  and not pa.types.is_large_string(self.types[c]) and not pa.types.is_integer(self.types[c])]
        if not nested:
            return frame
        import orjson

        frame = frame.copy(deep=False)
        for c in nested:
            frame[c] = [None if v is None else orjson.dumps(v).decode() for v in frame[c].tolist()]
        return frame

    def write_frame(self, frame: pd.DataFrame) -> None:
        self.write(None, frame)

    def _write_parquet(self, inputs: pa.Table | None, frame: pd.DataFrame) -> None:
        import pyarrow.parquet as pq

        own = [c for c in frame.columns if (inputs is None or c not in inputs.column_names) and c not in self.types]
        extra = pa.Table.from_pandas(frame[own], preserve_index=False) if own else None
        arrays, names = [], []
        for name in frame.columns:
            if name in self.types and (inputs is None or name not in inputs.column_names):
                arrays.append(pa.array([None if v is pd.NA else v for v in frame[name].tolist()],
                                       type=self.types[name]))
            else:
                src = inputs if inputs is not None and name in inputs.column_names else extra
                arrays.append(src.column(name))
            names.append(name)
        table = pa.Table.from_arrays(arrays, names=names)
        if self._schema is None:
            meta = pa.Schema.from_pandas(frame.iloc[:0], preserve_index=False).metadata
            # the result columns' text is large_string whatever pandas/pyarrow version converted it
            # (pandas < 2.2 gives string), so files of one run and of every version agree
            fields = [pa.field(f.name, pa.large_string() if pa.types.is_null(f.type)
                               or (pa.types.is_string(f.type) and f.name in own) else f.type)
                      for f in table.schema]
            self._schema = pa.schema(fields, metadata=meta)
            self._pq = pq.ParquetWriter(self.tmp, self._schema, compression="zstd")
        if not table.schema.equals(self._schema, check_metadata=False):
            table = table.cast(self._schema)
        else:
            table = table.replace_schema_metadata(self._schema.metadata)
        self._pq.write_table(table)

    def _close(self) -> None:
        if self._pq is not None:
            self._pq.close()
            self._pq = None
        if self._fh is not None:
            self._fh.flush()
            if self.fsync:
                os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def commit(self) -> None:
        """Close and rename the temp file over the output (atomic on one filesystem)."""
        if not self._started:
            raise RuntimeError("nothing written: write at least an empty batch (the header)")
        self._close()
        if self.fsync and self.fmt == "parquet":
            fd = os.open(self.tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Close and delete the temp file (a no-op after ``commit``)."""
        try:
            self._close()
        finally:
            try:
                os.remove(self.tmp)
            except FileNotFoundError:
                pass
