"""A frame's rows into chat messages: a prompt column, a template, a messages column; a system
message; images. What a row that sends nothing is told (empty prompt, unusable image)."""

from __future__ import annotations

import string
from collections import abc
from typing import Any, Mapping, Sequence

import pandas as pd

from .values import is_missing as _missing
from .images import RowError, image_urls, user_content
from .requests import user_messages
from ..exceptions import ConfigError

EMPTY_PROMPT = "empty_prompt"


def template_fields(template: str) -> list[str]:
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ConfigError(f"bad template {template!r}: {exc}") from None
    fields = []
    for name in names:
        base = name.split(".")[0].split("[")[0]
        if not base or base.isdigit():
            raise ConfigError(f"template fields must name columns, e.g. '{{review}}'; got {{{name}}}")
        fields.append(base)
    return list(dict.fromkeys(fields))


def row_messages(df: pd.DataFrame, *, prompt_col: str | None, template: str | None,
                 messages_col: str | None, system: str | None,
                 image_col: str | None = None) -> tuple[list, dict[int, str]]:
    """Per row: its messages (or None), and {position: reason} for rows that get no request."""
    _one_of(prompt_col, template, messages_col)
    images = _image_urls(df, image_col, messages_col)
    if messages_col is None:
        return _one_turn(_texts(df, prompt_col, template), system, images)
    if messages_col not in df.columns:
        raise ConfigError(f"messages_col {messages_col!r} is not a column; columns: {list(df.columns)}")
    out: list = []
    errors: dict[int, str] = {}
    for pos, value in enumerate(df[messages_col].tolist()):
        msgs = _as_messages(value)
        if msgs is None:
            out.append(None)
            errors[pos] = "no messages in this row"
        else:
            if system is not None and msgs[0].get("role") != "system":
                msgs = [{"role": "system", "content": system}, *msgs]
            out.append(msgs)
    return out, errors


def row_texts(df: pd.DataFrame, *, prompt_col: str | None, template: str | None,
              system: str | None) -> tuple["OneTurn", dict[int, str]]:
    """``row_messages`` for text-only one-turn rows (prompt_col= or template=, no images): the same
    checks and errors, but each row's messages are built only when asked for (``OneTurn``)."""
    _one_of(prompt_col, template, None)
    usable, errors = _usable(_texts(df, prompt_col, template))
    return OneTurn(usable, system), errors


def _usable(values: Sequence) -> tuple[list, dict[int, str]]:
    """Per row: its text, or None (missing: None, NA, NaN, blank), and the rows that send nothing."""
    usable = [t if type(t) is str and t and not t.isspace() else None for t in values]
    errors: dict[int, str] = {}
    if None in usable:  # a C-speed test: the loop below only for frames with such rows
        for pos, t in enumerate(usable):
            if t is None:
                if not _missing(values[pos]):  # a str subclass, say: the careful path
                    usable[pos] = values[pos]
                else:
                    errors[pos] = "empty prompt: no request sent"
    return usable, errors


class OneTurn(abc.Sequence):
    """Per row the messages ``user_messages(system, text)`` (None where ``text`` is None), built on
    access: a million rows resumed from a checkpoint never need theirs."""

    __slots__ = ("texts", "system")

    def __init__(self, texts: list, system: str | None) -> None:
        self.texts = texts
        self.system = system

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, pos):  # type: ignore[override]
        if isinstance(pos, slice):
            return [self[i] for i in range(*pos.indices(len(self.texts)))]
        text = self.texts[pos]
        return None if text is None else user_messages(self.system, text)


def _one_of(prompt_col: str | None, template: str | None, messages_col: str | None) -> None:
    if sum(x is not None for x in (prompt_col, template, messages_col)) != 1:
        raise ConfigError("give exactly one of prompt_col=, template= or messages_col=")


def _texts(df: pd.DataFrame, prompt_col: str | None, template: str | None) -> list:
    """Per row: the prompt column's value or the rendered template (None where a field is missing)."""
    cols = set(df.columns)
    if prompt_col is not None:
        if prompt_col not in cols:
            raise ConfigError(f"prompt_col {prompt_col!r} is not a column; columns: {list(df.columns)}")
        column = df[prompt_col]
        values = column.tolist()
        if isinstance(column.dtype, pd.StringDtype):  # str or NA only: nothing to check
            return values
        bad = next((v for v in values if type(v) is not str and not _missing(v)
                    and not isinstance(v, str)), None)
        if bad is not None:
            raise ConfigError(
                f"prompt_col {prompt_col!r} holds non-text values (e.g. {bad!r} of type "
                f"{type(bad).__name__}); convert it with df[{prompt_col!r}].astype('string') "
                "or use template=")
        return values
    fields = template_fields(template)
    missing = [f for f in fields if f not in cols]
    if missing:
        raise ConfigError(f"template names missing column(s) {missing}; columns: {list(df.columns)}")
    if not fields:
        raise ConfigError("template names no column: every row would send the same prompt")
    records = df[fields].to_dict("records") if len(df) else []
    texts: list = []
    for rec in records:
        if any(_missing(v) for v in rec.values()):
            texts.append(None)
        else:
            texts.append(template.format_map(rec))
    return texts


def _one_turn(texts: Sequence, system: str | None,
              images: Sequence | None = None) -> tuple[list, dict[int, str]]:
    if images is None:  # the common case, kept tight: a million rows go through here
        usable, errors = _usable(texts)
        if system is None:
            return [[{"role": "user", "content": t}] if t is not None else None for t in usable], errors
        sys_msg = {"role": "system", "content": system}
        return [[sys_msg, {"role": "user", "content": t}] if t is not None else None for t in usable], errors
    errors: dict[int, str] = {}
    out = []
    for pos, text in enumerate(texts):
        url = images[pos]
        if _missing(text):
            out.append(None)
            errors[pos] = "empty prompt: no request sent"
        elif isinstance(url, RowError):
            out.append(None)
            errors[pos] = url
        else:
            out.append(user_messages(system, user_content(text, url)))
    return out, errors


def _image_urls(df: pd.DataFrame, image_col: str | None, messages_col: str | None) -> list | None:
    """Per row: None, an image URL, or a ``RowError`` (see ``_images``)."""
    if image_col is None:
        return None
    if messages_col is not None:
        raise ConfigError("image_col= works with prompt_col= or template=; with messages_col= put "
                          "the image parts in the messages themselves")
    if image_col not in df.columns:
        raise ConfigError(f"image_col {image_col!r} is not a column; columns: {list(df.columns)}")
    return image_urls(df[image_col].tolist())


def _as_messages(value: Any) -> list | None:
    if _missing(value) if not isinstance(value, (list, tuple)) else False:
        return None
    if hasattr(value, "tolist"):  # a numpy array from Parquet
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"messages_col values must be lists of {{'role', 'content'}} dicts, got {value!r:.80}")
    msgs = []
    for m in value:
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise ConfigError(f"each message needs 'role' and 'content', got {m!r:.80}")
        msgs.append({k: v for k, v in dict(m).items() if v is not None})
    return msgs
