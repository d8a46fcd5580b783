"""Small validators for options: each names the option it checks, so a bad value is a clear
``ConfigError`` (or ``TypeError`` for a wrong kind of value) before anything is sent."""

from __future__ import annotations

import math
import numbers
import os
from typing import Any, Mapping

from ..exceptions import ConfigError


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r:.60}"


def number(name: str, value: Any, *, minimum: float | None = None, strict: bool = True,
           none: bool = False) -> float | None:
    """A finite real number (not a bool, not a string), above ``minimum`` (or at least it)."""
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name}= must be a number, got {_kind(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{name}= must be a finite number, got {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ConfigError(f"{name}= must be {'>' if strict else '>='} {minimum:g}, got {value:g}")
    return value


def whole(name: str, value: Any, *, minimum: int = 1, none: bool = False) -> int | None:
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name}= must be a whole number >= {minimum}, got {_kind(value)}")
    if value < minimum:
        raise ConfigError(f"{name}= must be a whole number >= {minimum}, got {value}")
    return int(value)


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name}= must be True or False, got {_kind(value)}")
    return value


def choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{name}= must be one of {', '.join(map(repr, allowed))}, got {value!r:.60}")
    return value


def text(name: str, value: Any, *, none: bool = True) -> str | None:
    if value is None and none:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{name}= must be a string, got {_kind(value)}")
    return value


def mapping(name: str, value: Any, *, none: bool = True) -> dict | None:
    if value is None and none:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name}= must be a dict, got {_kind(value)}")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"{name}= keys must be strings, got {bad[0]!r}")
    return dict(value)


def path(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or isinstance(value, bytes):
        raise ConfigError(f"{name}= must be a directory path (a str or os.PathLike), got {_kind(value)}")
    value = os.fspath(value)
    if not value.strip():
        raise ConfigError(f"{name}= must be a directory path, got an empty string")
    return value


def codes(name: str, value: Any) -> bool | tuple[str, ...]:
    """``retry_failed``: True / False, one error code, or several."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{name}= must be True, False, an error code or a list of error codes "
                      f"(e.g. ['data_inspection_failed']), got {_kind(value)}")
