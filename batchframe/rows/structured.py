"""Structured output: ``response_format`` in, and (with ``parse``) each JSON answer out as columns.

``response_format`` may be ``{"type": "json_object"}``, ``{"type": "json_schema", "json_schema":
{...}}``, or a pydantic model class (anything with ``model_json_schema``: pydantic is not a
dependency), which is sent as a ``json_schema`` response format named after the class.

With ``parse=True`` (the default when a model class is given) every answer is parsed into one column
per top-level key, added after the result columns, plus ``parse_error``. The columns come from the
schema when there is one (a model's fields, a json_schema's properties), so they do not depend on
the data; in plain JSON mode they are the keys seen in the answers, in first-seen order. A row whose
answer is not valid JSON, is not an object, or fails the model's validation keeps ``status`` "ok"
(the call succeeded and was billed), gets its parse error in ``parse_error`` and NA in the parsed
columns; its raw text stays in ``response``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Mapping

import orjson
import pandas as pd

from ..records import OK
from ..exceptions import ConfigError

log = logging.getLogger("batchframe")

PARSE_ERROR = "parse_error"
JSON_TYPES = ("json_object", "json_schema")
_DTYPES = {"string": "string", "integer": "Int64", "number": "Float64", "boolean": "boolean"}
_PY_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
             "object": (dict,), "array": (list,), "null": (type(None),)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Structured:
    """What to do with JSON answers: the response format sent, and how to parse the answers."""

    response_format: Mapping[str, Any]
    parse: bool = False
    model: Any = None                     # a pydantic model class, used to validate each answer
    schema: Mapping[str, Any] | None = None  # the JSON schema of the answer object, when known

    @property
    def fields(self) -> list[str] | None:
        """The parsed columns, when the schema says (a model's field names, else its properties)."""
        fields = getattr(self.model, "model_fields", None)
        if isinstance(fields, Mapping):
            return list(fields)
        props = (self.schema or {}).get("properties")
        return list(props) if isinstance(props, Mapping) else None


def prepare(params: Mapping[str, Any], parse: bool | None) -> tuple[dict, Structured | None]:
    """The request parameters with ``response_format`` made JSON, and the parse plan (or None)."""
    params = dict(params)
    fmt = params.get("response_format")
    if parse is not None and not isinstance(parse, bool):
        raise ConfigError(f"parse must be True, False or None, got {parse!r}")
    if fmt is None:
        if parse:
            raise ConfigError("parse=True needs response_format= ({'type': 'json_object'}, a "
                              "json_schema, or a pydantic model class)")
        return params, None
    model = None
    if isinstance(fmt, type) and hasattr(fmt, "model_json_schema"):
        model = fmt
        schema = fmt.model_json_schema()
        fmt = {"type": "json_schema", "json_schema": {"name": _schema_name(fmt.__name__), "schema": schema}}
        params["response_format"] = fmt
    if not isinstance(fmt, Mapping) or "type" not in fmt:
        raise ConfigError(f"response_format must be {{'type': 'json_object'}}, {{'type': 'json_schema', "
                          f"'json_schema': {{...}}}} or a pydantic model class; got {fmt!r:.80}")
    kind = fmt["type"]
    if kind == "text":
        if parse:
            raise ConfigError("parse=True needs a JSON response_format, not {'type': 'text'}")
        return params, None
    if kind not in JSON_TYPES:
        raise ConfigError(f"response_format type {kind!r} is not one of 'text', 'json_object', 'json_schema'")
    schema = None
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("schema", {}), Mapping):
            raise ConfigError("a json_schema response_format looks like {'type': 'json_schema', "
                              "'json_schema': {'name': 'answer', 'schema': {...}}}")
        schema = spec.get("schema")
    return params, Structured(response_format=dict(fmt), model=model, schema=schema,
                              parse=model is not None if parse is None else parse)


def _schema_name(name: str) -> str:
    """OpenAI-style schema names: letters, digits, _ and -, at most 64."""
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)
    return cleaned[:64] or "answer"


def check_json_word(df: pd.DataFrame, *, prompt_col: str | None, template: str | None,
                    messages_col: str | None, system: str | None) -> int:
    """How many rows have no "json" anywhere in their messages (DashScope's JSON mode needs it)."""
    for text in (system, template):
        if isinstance(text, str) and "json" in text.lower():
            return 0
    if len(df) == 0:
        return 0
    if prompt_col is not None and prompt_col in df.columns:
        has = df[prompt_col].astype("string").str.contains("json", case=False, regex=False)
        return int((~has.fillna(True)).sum())
    if template is not None:
        from .messages import template_fields

        fields = [f for f in template_fields(template) if f in df.columns]
        has = pd.Series(False, index=df.index)
        for f in fields:
            has |= df[f].astype("string").str.contains("json", case=False, regex=False).fillna(False)
        return int((~has).sum())
    if messages_col is not None and messages_col in df.columns:
        return sum("json" not in str(v).lower() for v in df[messages_col].tolist())
    return 0


def before_run(df: pd.DataFrame, structured: Structured | None, names: Mapping[str, str], *,
               dashscope: bool, **kwargs: Any) -> None:
    """Checks made before anything is sent: column clashes (an error), the word "json" (a warning).

    ``kwargs``: prompt_col, template, messages_col, system, as given to ``complete()``.
    """
    if structured is None or not isinstance(df, pd.DataFrame):
        return
    if structured.parse:
        prefix, suffix = _affixes(names)
        planned = [f"{prefix}{k}{suffix}" for k in (structured.fields or [])]
        planned.append(f"{prefix}{PARSE_ERROR}{suffix}")
        clash = [c for c in planned if c in df.columns or c in names.values()]
        if clash:
            raise ConfigError(f"parsed column(s) {clash} would clash with the frame's or the result "
                              "columns: pass prefix= or suffix= (applied to both), or rename the "
                              "frame's columns or the schema's keys")
    if not dashscope:
        return
    missing = check_json_word(df, **kwargs)
    if missing:
        log.warning("response_format=%s: DashScope refuses JSON mode (a 400) unless the word \"json\" "
                    "is in the messages, and %d of %d rows have none. Add it to system= (e.g. "
                    "\"Answer in JSON.\") or the prompt.", structured.response_format["type"],
                    missing, len(df))


def parse_answer(text: Any, structured: Structured) -> tuple[dict | None, str | None]:
    """One answer into (values by key, None) or (None, parse error)."""
    if not isinstance(text, str) or not text.strip():
        return None, "empty response"
    body = _strip_fence(text)
    model = structured.model
    if model is not None and hasattr(model, "model_validate_json"):
        try:
            obj = model.model_validate_json(body)
        except Exception as exc:  # pydantic.ValidationError; pydantic is not imported here
            return None, _short(exc)
        return obj.model_dump(), None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc}"
    if not isinstance(value, dict):
        return None, f"expected a JSON object, got {type(value).__name__}"
    problem = _check_schema(value, structured.schema)
    return (None, problem) if problem else (value, None)


def _strip_fence(text: str) -> str:
    """Models sometimes wrap JSON in a ```json fence even in JSON mode."""
    s = text.strip()
    if s.startswith("```") and s.endswith("```"):
        s = s[3:-3]
        s = s[4:] if s[:4].lower() == "json" else s
    return s.strip()


def _short(exc: Exception) -> str:
    lines = [ln for ln in str(exc).splitlines() if ln.strip() and "errors.pydantic.dev" not in ln]
    return "; ".join(ln.strip() for ln in lines[:4])


def _check_schema(value: dict, schema: Mapping[str, Any] | None) -> str | None:
    """A light check of the top level: required keys present, simple types right."""
    if not schema:
        return None
    missing = [k for k in schema.get("required", []) if k not in value]
    if missing:
        return f"missing required key(s) {missing}"
    for key, spec in (schema.get("properties") or {}).items():
        if key in value and isinstance(spec, Mapping):
            types = _types(spec)
            if types and not _is(value[key], types):
                return f"{key!r}: expected {'/'.join(types)}, got {type(value[key]).__name__}"
            enum = spec.get("enum")
            if isinstance(enum, list) and value[key] not in enum:
                return f"{key!r}: {value[key]!r} is not one of {enum}"
    return None


def _types(spec: Mapping[str, Any]) -> list[str]:
    kind = spec.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [k for k in kind if isinstance(k, str)]
    options = spec.get("anyOf") or spec.get("oneOf")
    if isinstance(options, list):
        found = [t for o in options if isinstance(o, Mapping) for t in _types(o)]
        if found and len(found) == len([o for o in options if isinstance(o, Mapping)]):
            return found
    return []


def _is(value: Any, types: list[str]) -> bool:
    for t in types:
        allowed = _PY_TYPES.get(t)
        if allowed is None or (isinstance(value, allowed) and not (t != "boolean" and isinstance(value, bool))):
            return True
    return False


def _dtype(spec: Any) -> str | None:
    """The column dtype a property's schema implies (None: no schema, infer from the values)."""
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        return "object"
    kinds = [t for t in _types(spec) if t != "null"]
    if not kinds and isinstance(spec.get("enum"), list) and all(isinstance(v, str) for v in spec["enum"]):
        return "string"
    return _DTYPES.get(kinds[0], "object") if len(kinds) == 1 else "object"


def _model_schema(structured: Structured) -> Mapping[str, Any]:
    if structured.model is not None:
        return structured.model.model_json_schema()
    return structured.schema or {}


def _affixes(names: Mapping[str, str]) -> tuple[str, str]:
    """The prefix and suffix the caller gave, read back from two result column names."""
    import os.path

    a, b = names["response"], names["status"]  # "response" and "status" share no first/last letter
    prefix = os.path.commonprefix([a, b])
    suffix = os.path.commonprefix([a[::-1], b[::-1]])[::-1]
    return prefix, suffix
