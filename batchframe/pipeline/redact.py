"""Secrets out of everything a server says: the one place every answer and error passes through.

A server may echo the request's ``Authorization: Bearer <key>`` header, in an error message, an
answer, or a header such as ``x-request-id``. Every ``Result`` an executor yields (Batch Chat engine,
a user's client, Batch File lines) and every run-stopping error pass through ``Redactor`` in the run
loop, before anything is stored, logged, shown or raised: the run's key(s) and anything shaped like
``Bearer <token>`` or ``sk-<token>`` become ``[redacted]``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Iterable

from ..exceptions import RunFatalError
from ..records import Result

REDACTED = "[redacted]"
_SHAPES = re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=\-]{6,}|\bsk-[A-Za-z0-9_\-]{6,}")
_FIELDS = ("response", "reasoning_content", "finish_reason", "error", "error_code", "request_id", "model")


def _shape(m: re.Match) -> str:
    return (m.group(1) or "") + REDACTED


class Redactor:
    def __init__(self, secrets: Iterable[str | None]) -> None:
        self.secrets = sorted({s for s in secrets if isinstance(s, str) and len(s) >= 4}, key=len, reverse=True)

    def text(self, value: str | None) -> str | None:
        if not value:
            return value
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        if "sk-" in value or "earer" in value or "EARER" in value:
            value = _SHAPES.sub(_shape, value)
        return value

    def result(self, res: Result) -> Result:
        changed = {}
        for name in _FIELDS:
            value = getattr(res, name)
            if isinstance(value, str):
                clean = self.text(value)
                if clean is not value and clean != value:
                    changed[name] = clean
        return dataclasses.replace(res, **changed) if changed else res

    def error(self, exc: RunFatalError) -> RunFatalError:
        """The same error, its message and provider message redacted (a new exception object)."""
        message = self.text(str(exc.args[0]) if exc.args else str(exc))
        clean = type(exc)(message, status=exc.status, code=self.text(exc.code),
                          provider_message=self.text(exc.provider_message), hint=exc.hint)
        clean.__dict__.update({k: v for k, v in exc.__dict__.items()
                               if k not in ("status", "code", "provider_message", "hint", "partial")})
        return clean
