"""``parse=``: each JSON answer into columns, one step for every front door.

One column per top-level key, after the result columns, plus ``parse_error``. The columns and their
dtypes come from the schema when there is one (a pydantic model's fields, a json_schema's
properties); in plain JSON mode they are the keys the answers used (first-seen order), each with the
dtype its values imply (``KIND_DTYPES``: all text → string, whole numbers → Int64, numbers →
Float64, booleans → boolean, anything else → objects). Fixed-shape values are typed columns;
free-form values (objects, lists, mixed kinds) are Python objects in a frame (``nested="object"``) and
JSON text in files (``nested="json"``), so every batch of a file has the same column types.

Without a schema the keys are known only once every answer is in: a frame is parsed whole at the end
(``observe`` then ``add``); a file sink writes a first pass aside and rewrites it (``two_pass``).
A row whose answer does not parse keeps ``status`` "ok" (the call succeeded and was billed).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import orjson
import pandas as pd

from ..records import OK
from ..rows.structured import PARSE_ERROR, Structured, _affixes, _dtype, _model_schema, parse_answer

log = logging.getLogger("batchframe")

KIND_DTYPES = {frozenset({"str"}): "string", frozenset({"int"}): "Int64", frozenset({"float"}): "Float64",
               frozenset({"int", "float"}): "Float64", frozenset({"bool"}): "boolean"}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str" if isinstance(value, str) else "other"


class Parse:
    def __init__(self, structured: Structured, names: Mapping[str, str], *, nested: str) -> None:
        self.structured, self.names, self.nested = structured, names, nested
        self.prefix, self.suffix = _affixes(names)
        props = _model_schema(structured).get("properties") or {}
        self.fields = structured.fields
        self.dtypes: dict[str, str] = {}
        if self.fields is not None:
            self.dtypes = {k: _dtype(props.get(k)) or "object" for k in self.fields}
        self._seen: dict[str, set] = {}  # schema-less: key -> kinds of value seen
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
        parsed, _ = self._parse(out)
        for row in parsed:
            for k, v in (row or {}).items():
                kinds = self._seen.setdefault(k, set())
                if v is not None:
                    kinds.add(_kind(v))

    def settle(self) -> None:
        """After the first pass: the columns and their dtypes."""
        self.fields = list(self._seen)
        self.dtypes = {k: KIND_DTYPES.get(frozenset(kinds), "object") for k, kinds in self._seen.items()}

    def add(self, out: pd.DataFrame) -> pd.DataFrame:
        """``out`` with the parsed columns and ``parse_error`` appended."""
        parsed, errors = self._parse(out)
        self.errors += sum(e is not None for e in errors)
        data: dict[str, Any] = {}
        for key in self.fields or []:
            col = f"{self.prefix}{key}{self.suffix}"
            if col in out.columns or col in data:
                col = f"{col}_json"
                log.warning("parsed key %r clashes with an existing column: stored as %r", key, col)
            data[col] = self._column([row.get(key) if row else None for row in parsed], self.dtypes.get(key))
        data[f"{self.prefix}{PARSE_ERROR}{self.suffix}"] = pd.array(errors, dtype="string")
        result = pd.concat([out, pd.DataFrame(data, index=out.index)], axis=1)
        result.attrs = out.attrs
        return result

    def _column(self, values: list, dtype: str | None) -> Any:
        if dtype not in (None, "object"):
            try:
                return pd.array(values, dtype=dtype)
            except (TypeError, ValueError):  # a value that breaks the schema's type: kept as is
                pass
        if self.nested == "json":
            return pd.array([None if v is None else orjson.dumps(v).decode() for v in values], dtype="string")
        column = pd.Series(values, dtype=object)
        return column.array
