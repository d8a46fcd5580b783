"""Row keys: a stable string for an index label, and back.

A checkpoint keys each row by its index label. Labels can be ints, strings, floats, timestamps or
tuples (MultiIndex); the key is a short typed string so that ``1`` and ``"1"`` never collide and the
label can be restored when a checkpoint is read without the original frame.
"""

from __future__ import annotations

import datetime as _dt
import numbers
from typing import Any, Hashable

import orjson


def _plain(label: Any) -> Any:
    if isinstance(label, bool):
        return ["b", label]
    if isinstance(label, numbers.Integral):
        return ["i", int(label)]
    if isinstance(label, numbers.Real):
        return ["f", float(label)]
    if isinstance(label, str):
        return ["s", label]
    if isinstance(label, tuple):
        return ["t", [_plain(x) for x in label]]
    if isinstance(label, (_dt.datetime, _dt.date)):  # pandas.Timestamp is a datetime
        return ["d", label.isoformat()]
    raise TypeError(f"unsupported index label type {type(label).__name__} for a checkpoint key")


def key_of(label: Hashable) -> str:
    """The key string of one index label. Ints and strings are the fast path."""
    if isinstance(label, str):
        return f"s:{label}"
    if isinstance(label, numbers.Integral) and not isinstance(label, bool):
        return f"i:{int(label)}"
    return "j:" + orjson.dumps(_plain(label)).decode()


def _unplain(obj: list) -> Any:
    tag, value = obj
    if tag == "t":
        return tuple(_unplain(x) for x in value)
    if tag == "d":
        import pandas as pd

        return pd.Timestamp(value)
    return value


def label_of(key: str) -> Hashable:
    """Inverse of :func:`key_of` (timestamps come back as ``pandas.Timestamp``)."""
    tag, _, rest = key.partition(":")
    if tag == "i":
        return int(rest)
    if tag == "s":
        return rest
    if tag == "j":
        return _unplain(orjson.loads(rest))
    raise ValueError(f"not a batchframe row key: {key!r}")


def index_keys(index: Any) -> list[str]:
    """The key of every label of a pandas Index, with fast paths for int and str indexes."""
    import pandas as pd

    if pd.api.types.is_integer_dtype(index.dtype) and not isinstance(index, pd.MultiIndex):
        return [f"i:{x}" for x in index.tolist()]
    labels = index.tolist()
    if all(type(x) is str for x in labels):
        return [f"s:{x}" for x in labels]
    return [key_of(label) for label in labels]


def position_keys(start: int, n: int) -> list[str]:
    """Rows keyed by their position in the source (what a default RangeIndex gives)."""
    return [f"i:{p}" for p in range(start, start + n)]
