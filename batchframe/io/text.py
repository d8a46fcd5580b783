"""Reading CSV, TSV and JSONL with pyarrow, with one type per column over the whole file (see ``_io``)."""

from __future__ import annotations

import io
import re
from typing import Iterator, Sequence

import pyarrow as pa

from ..exceptions import ConfigError

CSV_BLOCK = 1 << 22     # bytes per CSV block
JSONL_CHUNK = 1 << 22   # bytes of JSON lines parsed at once


def short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


# ---- CSV / TSV ----------------------------------------------------------------------------------

def _csv_options(fmt: str, types: dict | None, include: Sequence[str] | None = None) -> dict:
    import pyarrow.csv as pacsv

    return dict(
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK),
        parse_options=pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",", newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True,
                                             column_types=types or {}, include_columns=include or []))


_CSV_COLUMN = re.compile(r"In CSV column #(\d+)")
_CSV_KEEP = (pa.int64(), pa.float64(), pa.bool_())


def csv_scanner(fmt: str):
    def scan(f: str) -> tuple[pa.Schema, int]:
        """Fix each column's type over the whole file and count the rows: read it with the types of
        the first block, widen a column (int -> float -> text) when a later block disagrees, repeat."""
        import pyarrow.csv as pacsv

        with pacsv.open_csv(f, **_csv_options(fmt, None)) as reader:
            first = reader.schema
        types = {n: (t if t in _CSV_KEEP else pa.large_string()) for n, t in zip(first.names, first.types)}
        if len(set(first.names)) != len(first.names):
            raise ConfigError(f"{f}: duplicate column names in the header: {first.names}")
        for _ in range(2 * len(types) + 1):
            rows = 0
            try:
                with pacsv.open_csv(f, **_csv_options(fmt, types)) as reader:
                    for rb in reader:
                        rows += rb.num_rows
                return pa.schema(list(types.items())), rows
            except pa.ArrowInvalid as exc:
                m = _CSV_COLUMN.search(str(exc))
                if m is None or "conversion error" not in str(exc):
                    raise
                name = first.names[int(m.group(1))]
                types[name] = pa.float64() if types[name] == pa.int64() else pa.large_string()
        raise ConfigError(f"{f}: could not settle the column types")  # pragma: no cover
    return scan


def csv_tables(f: str, fmt: str, schema: pa.Schema) -> Iterator[pa.Table]:
    import pyarrow.csv as pacsv

    types = dict(zip(schema.names, schema.types))
    with pacsv.open_csv(f, **_csv_options(fmt, types, schema.names)) as reader:
        for rb in reader:
            yield pa.Table.from_batches([rb])


# ---- JSONL --------------------------------------------------------------------------------------

def _jsonl_chunks(f: str) -> Iterator[bytes]:
    buf: list[bytes] = []
    size = 0
    with open(f, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            buf.append(line if line.endswith(b"\n") else line + b"\n")
            size += len(line)
            if size >= JSONL_CHUNK:
                yield b"".join(buf)
                buf, size = [], 0
    if buf:
        yield b"".join(buf)


def jsonl_tables(f: str, schema: pa.Schema | None) -> Iterator[pa.Table]:
    import pyarrow.json as pj

    parse = (pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
             if schema is not None else pj.ParseOptions())
    for chunk in _jsonl_chunks(f):
        yield pj.read_json(io.BytesIO(chunk), read_options=pj.ReadOptions(block_size=len(chunk) + 1),
                           parse_options=parse)


def jsonl_scan(f: str) -> tuple[pa.Schema, int]:
    schema, rows = None, 0
    for table in jsonl_tables(f, None):
        rows += table.num_rows
        try:
            schema = table.schema if schema is None else pa.unify_schemas(
                [schema, table.schema], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ConfigError(f"{f}: a field changes type between lines ({short(exc)}); "
                              "give it one JSON type in every line") from None
    if schema is None:
        return pa.schema([]), 0
    return pa.schema([pa.field(n, pa.large_string() if pa.types.is_null(t) else t)
                      for n, t in zip(schema.names, schema.types)]), rows
