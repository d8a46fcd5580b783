"""Exceptions raised by batchframe.

    BatchframeError                      base of everything batchframe raises on purpose
    ├── ConfigError (ValueError)         bad arguments, caught before any request is sent
    ├── RunFatalError                    an answer that would hit every row (bad key, unknown model,
    │   │                                no credit, a parameter the model rejects): dispatch stopped,
    │   │                                finished rows saved; carries status, code, message, hint
    │   └── BudgetExceeded               max_cost / deadline reached (raised only when asked to)
    ├── CheckpointError                  a checkpoint that cannot be used (foreign, locked, other version)
    │   └── CheckpointLocked             another run holds the checkpoint's lock
    └── RunInterrupted                   Ctrl-C / SIGTERM: carries the partial result frame

Per-row failures (moderation, input too long, retries exhausted) are never raised: they land in the
row's ``error`` / ``error_code`` columns. No message here ever contains the API key.
"""

from __future__ import annotations

from typing import Any


class BatchframeError(Exception):
    """Base class for batchframe's errors."""


class ConfigError(BatchframeError, ValueError):
    """A bad argument or option, detected before anything is sent."""


class RunFatalError(BatchframeError):
    """An error that would hit every row: the run stopped dispatching.

    Rows that finished are kept (in the checkpoint, and in ``partial`` when available).
    """

    def __init__(self, message: str, *, status: int = 0, code: str | None = None,
                 provider_message: str | None = None, hint: str | None = None,
                 partial: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.provider_message = provider_message
        self.hint = hint
        self.partial = partial  # the result frame so far (pandas layer fills it)


class BudgetExceeded(RunFatalError):
    """``max_cost`` or ``deadline`` reached; raised only with ``on_budget="raise"``."""


class CheckpointError(BatchframeError):
    """The checkpoint directory cannot be used as asked."""


class CheckpointLocked(CheckpointError):
    """Another live run is writing this checkpoint."""


class RunInterrupted(BatchframeError, KeyboardInterrupt):
    """Raised on Ctrl-C when the caller asked for exceptions instead of a partial frame."""

    def __init__(self, message: str, partial: Any = None) -> None:
        super().__init__(message)
        self.partial = partial
