"""The rows stage: a batch of rows into what the run would send, the same for every front door.

``prepare(frame, keys, plan, spec, dedupe=...)`` takes one batch (a pandas frame of the input
columns, and each row's checkpoint key) and gives, per row, its messages (``None``: no request), the
hash of the exact request it would send (``rid``, see ``requests``), and the rows that send nothing
with their reason (empty prompt, unusable image, text that is not valid Unicode). ``complete()``
passes its whole frame as one batch; the CLI and the Polars door pass theirs batch by batch.

``RowPlan`` says what to send: exactly one of ``prompt_col``, ``template`` or ``messages_col``, an
optional ``system`` message and ``image_col``; ``id_col`` keys the rows of a source that has no index.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import orjson
import pandas as pd

from ..exceptions import ConfigError
from .images import RowError
from .messages import OneTurn, row_messages, row_texts
from .requests import RequestSpec

INVALID_TEXT = "invalid_text"


@dataclasses.dataclass(frozen=True, kw_only=True)
class RowPlan:
    prompt_col: str | None = None
    template: str | None = None
    messages_col: str | None = None
    system: str | None = None
    image_col: str | None = None
    id_col: str | None = None

    def __post_init__(self) -> None:
        given = [n for n in ("prompt_col", "template", "messages_col") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ConfigError("give exactly one of prompt_col=, template= or messages_col="
                              + (f" (got {', '.join(given)})" if given else ""))
        for name in ("prompt_col", "template", "messages_col", "system", "image_col", "id_col"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{name}= must be a string (a column name{', or text' if name in ('template', 'system') else ''}), "
                                  f"got {type(value).__name__} {value!r:.60}")
            if value is not None:
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise ConfigError(f"{name}= is not valid Unicode text (it holds a lone surrogate)") from None
        if self.image_col is not None and self.messages_col is not None:
            raise ConfigError("image_col= works with prompt_col= or template=; with messages_col= put "
                              "the image parts in the messages themselves")

    def kwargs(self) -> dict:
        return dict(prompt_col=self.prompt_col, template=self.template, messages_col=self.messages_col,
                    system=self.system)


@dataclasses.dataclass
class Prepared:
    """Per row: ``messages[pos]`` (or None), ``rids[pos]`` (or None: no request), and ``errors``
    {position: reason} for the rows that send nothing."""

    messages: Sequence
    rids: list
    errors: dict[int, Any]


def prepare(frame: pd.DataFrame, keys: Sequence[str], plan: RowPlan, spec: RequestSpec, *,
            dedupe: bool = True) -> Prepared:
    if plan.messages_col is None and plan.image_col is None:  # text rows: hashed without messages
        messages, errors = row_texts(frame, prompt_col=plan.prompt_col, template=plan.template,
                                     system=plan.system)
        rids = spec.text_rids(messages.texts, messages.system)
        _invalid(rids, messages.texts, errors, messages)
    else:
        messages, errors = row_messages(_decoded(frame, plan), image_col=plan.image_col, **plan.kwargs())
        hasher = spec.hasher()
        rids = []
        for pos, m in enumerate(messages):
            if m is None:
                rids.append(None)
                continue
            try:
                rids.append(hasher(m))
            except TypeError:  # orjson: "str is not valid UTF-8" (a lone surrogate in the row)
                rids.append(None)
                errors[pos] = _invalid_error()
    if not dedupe:  # identical requests stay distinct: the row key joins the hash
        rids = [f"{r}.{k}" if r is not None else None for r, k in zip(rids, keys)]
    return Prepared(messages, rids, errors)


def _invalid(rids: list, texts: list, errors: dict, messages: OneTurn) -> None:
    """Rows whose text could not be hashed (not valid Unicode) send nothing and fail on their own."""
    if rids.count(None) == texts.count(None):  # C speed: the usual case, every text hashed
        return
    for pos, (rid, text) in enumerate(zip(rids, texts)):
        if rid is None and text is not None:
            errors[pos] = _invalid_error()
            texts[pos] = None


def _invalid_error() -> RowError:
    return RowError("the prompt is not valid Unicode text (it holds a lone surrogate, e.g. '\\ud800'): "
                    "no request sent; fix the row's text", INVALID_TEXT)


def _decoded(frame: pd.DataFrame, plan: RowPlan) -> pd.DataFrame:
    """``frame`` as ``row_messages`` wants it: a text ``messages_col`` (CSV, JSONL) holds JSON."""
    col = plan.messages_col
    if col is None or col not in frame.columns or not pd.api.types.is_string_dtype(frame[col].dtype):
        return frame
    work = frame.copy(deep=False)
    work[col] = pd.Series([_json(v, col, label) for label, v in zip(frame.index, frame[col].tolist())],
                          index=frame.index, dtype=object)
    return work


def _json(value: Any, col: str, row: Any) -> Any:
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise ConfigError(f"row {row}: messages_col {col!r} holds text that is not JSON: {value!r:.60}; "
                          "it must be a JSON list of {\"role\", \"content\"} objects") from None
