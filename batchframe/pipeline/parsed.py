"""``--parse`` in the streaming run: each JSON answer into columns, batch by batch, with a fixed schema.

``complete()`` parses a whole frame at once (``_structured.add_columns``): in plain JSON mode the
columns are the keys seen in all answers and their dtypes are inferred from all values. A stream
writes its first batch before the last answer exists, so:

- with a schema (a ``json_schema`` response format with ``properties``), the columns and dtypes come
  from the schema, and each batch is parsed as it is written;
- without one (``{"type": "json_object"}``), the run writes its output without the parsed columns to
  a hidden Parquet file while noting each key and the kinds of value it held, then rewrites it batch
  by batch into the real output with one column per key (first-seen order), each with the dtype
  ``pandas.array`` would infer from all its values.

Either way a nested value (an object or a list) is written as JSON text, so every batch has the same
column types; ``complete()`` keeps such values as Python objects in its frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import orjson
import pandas as pd

from ..io.sinks import TableWriter
from ..records import OK
from ..rows.structured import PARSE_ERROR, Structured, _affixes, _dtype, _model_schema, parse_answer

_KIND_DTYPES = {frozenset({"str"}): "string", frozenset({"int"}): "Int64", frozenset({"float"}): "Float64",
                frozenset({"int", "float"}): "Float64", frozenset({"bool"}): "boolean"}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str" if isinstance(value, str) else "other"


def _json_text(values: list) -> pd.arrays.StringArray:
    return pd.array([None if v is None else orjson.dumps(v).decode() for v in values], dtype="string")


class StreamParse:
    def __init__(self, structured: Structured, names: Mapping[str, str]) -> None:
        self.structured = structured
        self.names = names
        self.prefix, self.suffix = _affixes(names)
        props = _model_schema(structured).get("properties") or {}
        self.fields = structured.fields
        self.dtypes: dict[str, str] = {}
        if self.fields is not None:
            self.dtypes = {k: _dtype(props.get(k)) or "object" for k in self.fields}
        self.seen: dict[str, set] = {}  # schema-less: key -> kinds of value seen
        self.errors = 0

    @property
    def two_pass(self) -> bool:
        return self.fields is None

    def _parse(self, out: pd.DataFrame) -> tuple[list, list]:
        texts = out[self.names["response"]].tolist()
        ok = (out[self.names["status"]] == OK).fillna(False).tolist()
        parsed: list = [None] * len(out)
        errors: list = [None] * len(out)
        for pos, (text, good) in enumerate(zip(texts, ok)):
            if good:
                parsed[pos], errors[pos] = parse_answer(text, self.structured)
        return parsed, errors

    def observe(self, out: pd.DataFrame) -> None:
        """Schema-less first pass: note the keys and the kinds of their values."""
        parsed, errors = self._parse(out)
        self.errors += sum(e is not None for e in errors)
        for row in parsed:
            for k, v in (row or {}).items():
                kinds = self.seen.setdefault(k, set())
                if v is not None:
                    kinds.add(_kind(v))

    def settle(self) -> None:
        """After the first pass: the columns and their dtypes."""
        self.fields = list(self.seen)
        self.dtypes = {k: _KIND_DTYPES.get(frozenset(kinds), "object") for k, kinds in self.seen.items()}

    def add(self, out: pd.DataFrame, *, count: bool = True) -> pd.DataFrame:
        """``out`` with the parsed columns and ``parse_error`` appended."""
        parsed, errors = self._parse(out)
        if count:
            self.errors += sum(e is not None for e in errors)
        data: dict[str, Any] = {}
        for key in self.fields or []:
            col = f"{self.prefix}{key}{self.suffix}"
            if col in out.columns or col in data:
                col = f"{col}_json"
            values = [row.get(key) if row else None for row in parsed]
            dtype = self.dtypes.get(key, "object")
            if dtype == "object":
                data[col] = _json_text(values)
            else:
                try:
                    data[col] = pd.array(values, dtype=dtype)
                except (TypeError, ValueError):
                    data[col] = _json_text(values)
        data[f"{self.prefix}{PARSE_ERROR}{self.suffix}"] = pd.array(errors, dtype="string")
        return pd.concat([out, pd.DataFrame(data, index=out.index)], axis=1)


def rewrite_parsed(unparsed: Path, writer: TableWriter, parse: StreamParse, batch_rows: int) -> None:
    """Second pass of schema-less ``--parse``: the first pass's Parquet, with the parsed columns."""
    import pyarrow.parquet as pq

    parse.settle()
    with pq.ParquetFile(unparsed, buffer_size=1 << 20, pre_buffer=False) as pf:
        for rb in pf.iter_batches(batch_size=batch_rows):
            frame = rb.to_pandas()
            writer.write(None, parse.add(frame, count=False))
        if writer.rows == 0:
            writer.write(None, parse.add(pf.schema_arrow.empty_table().to_pandas(), count=False))
