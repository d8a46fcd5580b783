"""Reading CSV, TSV and JSONL with pyarrow, with one type per column over the whole file (see ``_io``)."""

from __future__ import annotations

import io
import re
from typing import Iterator, Sequence

import pyarrow as pa

from . import malformed
from ..exceptions import ConfigError

CSV_BLOCK = 1 << 22     # bytes per CSV block
JSONL_CHUNK = 1 << 22   # bytes of JSON lines parsed at once


def short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


# ---- CSV / TSV ----------------------------------------------------------------------------------

def _csv_options(fmt: str, types: dict | None, include: Sequence[str] | None = None,
                 invalid_rows: list | None = None) -> dict:
    import pyarrow.csv as pacsv

    def keep(row):  # the bad row, to find its line; the read still fails
        invalid_rows.append(row)
        return "error"
    handler = keep if invalid_rows is not None else None
    return dict(
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK),
        parse_options=pacsv.ParseOptions(delimiter=_delimiter(fmt), newlines_in_values=True,
                                         invalid_row_handler=handler),
        convert_options=pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True,
                                             column_types=types or {}, include_columns=include or []))


_CSV_COLUMN = re.compile(r"In CSV column #(\d+)")
_CSV_KEEP = (pa.int64(), pa.float64(), pa.bool_())


def _delimiter(fmt: str) -> str:
    return "\t" if fmt == "tsv" else ","


def csv_scanner(fmt: str):
    def scan(f: str) -> tuple[pa.Schema, int]:
        """Fix each column's type over the whole file and count the rows: read it with the types of
        the first block, widen a column (int -> float -> text) when a later block disagrees, repeat.
        Malformed files (a quote never closed, a row with too few or too many fields, bytes that are
        not UTF-8) are refused with the line (see ``malformed``)."""
        import pyarrow.csv as pacsv

        bad: list = []
        try:
            with pacsv.open_csv(f, **_csv_options(fmt, None, invalid_rows=bad)) as reader:
                first = reader.schema
            names = first.names
        except pa.ArrowInvalid as exc:
            raise _malformed(f, exc, bad) from None
        except UnicodeDecodeError:  # in the header
            raise malformed.not_utf8(f) or ConfigError(f"{f}: the header is not UTF-8") from None
        types = {n: (t if t in _CSV_KEEP else pa.large_string()) for n, t in zip(names, first.types)}
        if len(set(names)) != len(names):
            raise ConfigError(f"{f}: duplicate column names in the header: {names}")
        for _ in range(2 * len(types) + 1):
            rows, last = 0, None
            try:
                with pacsv.open_csv(f, **_csv_options(fmt, types, invalid_rows=bad)) as reader:
                    for rb in reader:
                        rows += rb.num_rows
                        last = rb if rb.num_rows else last
            except pa.ArrowInvalid as exc:
                m = _CSV_COLUMN.search(str(exc))
                if m is None or "conversion error" not in str(exc) or "invalid UTF8" in str(exc):
                    raise _malformed(f, exc, bad) from None
                name = names[int(m.group(1))]
                types[name] = pa.float64() if types[name] == pa.int64() else pa.large_string()
                continue
            value = last.column(last.num_columns - 1)[last.num_rows - 1].as_py() if last else names[-1]
            error = malformed.unterminated(f, value, _delimiter(fmt))
            if error is not None:
                raise error
            return pa.schema(list(types.items())), rows
        raise ConfigError(f"{f}: could not settle the column types")  # pragma: no cover
    return scan


def _malformed(f: str, exc: pa.ArrowInvalid, bad: list) -> Exception:
    """A clearer error than pyarrow's for a malformed file (its line), else pyarrow's own."""
    if "invalid UTF8" in str(exc):
        return malformed.not_utf8(f) or exc
    if bad:
        return malformed.wrong_fields(f, bad[0].expected_columns, bad[0].actual_columns, bad[0].text)
    return exc


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


def jsonl_tables(f: str, schema: pa.Schema | None, *, check_utf8: bool = False) -> Iterator[pa.Table]:
    import pyarrow.json as pj

    parse = (pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
             if schema is not None else pj.ParseOptions())
    for chunk in _jsonl_chunks(f):
        if check_utf8:
            try:
                chunk.decode("utf-8")  # pyarrow's JSON reader does not check it: the run would crash on it
            except UnicodeDecodeError:
                raise malformed.not_utf8(f) or ConfigError(f"{f}: not UTF-8") from None
        yield pj.read_json(io.BytesIO(chunk), read_options=pj.ReadOptions(block_size=len(chunk) + 1),
                           parse_options=parse)


def jsonl_scan(f: str) -> tuple[pa.Schema, int]:
    schema, rows = None, 0
    for table in jsonl_tables(f, None, check_utf8=True):
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
