"""Batch File's options, checked, and where its endpoints are.

``file_options(...)`` validates the options ``pipeline.options.resolve`` takes for this mode (their
names and defaults live only in ``resolve``'s signature) into a frozen ``FileOptions``.

Endpoints (DESIGN.md › Batch File mode, › Checkpoints): DashScope serves Batch Chat on the region's
``batch.`` host and Batch File (``/files``, ``/batches``) on the region's plain host. A run in file
or auto mode on DashScope keeps the region's Batch Chat URL as its base URL: that is what the request
hash names (a row answered in one mode is not re-sent in the other, and existing Batch Chat
checkpoints stay valid) and where a ``file_fallback_s`` sends what is left; ``file_base_url`` gives
the region's plain host for the file endpoints. Any other base URL is itself in both roles.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..engine.wire import is_dashscope
from ..exceptions import ConfigError
from ..pipeline import checks

MODES = ("chat", "file", "auto")
CHAT_ENDPOINT = "/v1/chat/completions"
TEST_ENDPOINT = "/v1/chat/ds-test"   # DashScope's free dry run: only with the test model
TEST_MODEL = "batch-test-model"
TEST_MAX_LINES = 100
MAX_LINES = 50_000                   # per file, DashScope's and OpenAI's limit
MAX_BYTES = 500 * 2 ** 20            # per file, DashScope's limit
DAY_S = 86_400.0
DASHSCOPE_POLL_S = 60.0              # the vendor's advice: not more than once a minute, with backoff
OTHER_POLL_S = 5.0
_WINDOW = re.compile(r"(\d+)([hd])")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FileOptions:
    mode: str = "chat"
    completion_window: str = "24h"
    poll_s: float | None = None         # None: 60 s with backoff on DashScope, 5 s elsewhere
    auto_file_rows: int = 10_000
    fallback_s: float | None = None
    max_lines: int = MAX_LINES
    max_bytes: int = MAX_BYTES
    keep_remote_files: bool = False
    test: bool = False

    @property
    def endpoint(self) -> str:
        """The batch's endpoint and every line's ``url``."""
        return TEST_ENDPOINT if self.test else CHAT_ENDPOINT

    @property
    def line_limit(self) -> int:
        return min(self.max_lines, TEST_MAX_LINES) if self.test else self.max_lines


def window_hours(window: Any) -> int | None:
    match = _WINDOW.fullmatch(window) if isinstance(window, str) else None
    return int(match[1]) * (24 if match[2] == "d" else 1) if match else None


def file_options(*, mode: Any, completion_window: Any, poll_s: Any, auto_file_rows: Any,
                 file_fallback_s: Any, file_max_lines: Any, file_max_bytes: Any, keep_remote_files: Any,
                 file_test: Any, checkpoint: Any, deadline_s: float | None) -> FileOptions:
    mode = checks.choice("mode", mode, MODES)
    hours = window_hours(completion_window)
    if hours is None or not 24 <= hours <= 336:
        raise ConfigError(f"completion_window= must be '24h' to '336h' (or '1d' to '14d'), got "
                          f"{completion_window!r:.40}")
    lines = checks.whole("file_max_lines", file_max_lines)
    if lines > MAX_LINES:
        raise ConfigError(f"file_max_lines= is at most {MAX_LINES:,} (a batch file's limit), got {lines:,}")
    size = checks.whole("file_max_bytes", file_max_bytes, minimum=1024)
    if size > MAX_BYTES:
        raise ConfigError(f"file_max_bytes= is at most {MAX_BYTES:,} (500 MiB, a batch file's limit), got {size:,}")
    out = FileOptions(
        mode=mode, completion_window=completion_window,
        poll_s=checks.number("poll_s", poll_s, minimum=0, none=True),
        auto_file_rows=checks.whole("auto_file_rows", auto_file_rows),
        fallback_s=checks.number("file_fallback_s", file_fallback_s, minimum=0, none=True),
        max_lines=lines, max_bytes=size, keep_remote_files=checks.flag("keep_remote_files", keep_remote_files),
        test=checks.flag("file_test", file_test))
    if mode == "file" and checkpoint is None:
        raise ConfigError("mode='file' needs checkpoint= (a directory): every file and batch id is "
                          "recorded there the moment it exists, so a crash or Ctrl-C never loses a batch "
                          "you pay for, and the same call re-attaches to it")
    if out.test and mode == "chat":
        raise ConfigError("file_test=True is a dry run of Batch File mode: pass mode='file'")
    if out.fallback_s is not None and mode == "chat":
        raise ConfigError("file_fallback_s= applies to Batch File mode: pass mode='file' or mode='auto'")
    if out.fallback_s is not None and deadline_s is not None and out.fallback_s >= deadline_s:
        raise ConfigError(f"file_fallback_s={out.fallback_s:g} must be under deadline_s={deadline_s:g} "
                          "(the rows left are finished through Batch Chat before the deadline)")
    return out


def _swap_host(base_url: str, batch: bool) -> str:
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    bare = host[len("batch."):] if host.startswith("batch.") else host
    new = f"batch.{bare}" if batch else bare
    netloc = parts.netloc.replace(host, new, 1) if host else parts.netloc
    return urlunsplit(parts._replace(netloc=netloc))


def hash_base_url(base_url: str) -> str:
    """The base URL a file-mode run hashes under and falls back to: on DashScope the region's
    Batch Chat URL, else ``base_url`` itself."""
    return _swap_host(base_url, batch=True) if is_dashscope(base_url) else base_url


def file_base_url(base_url: str) -> str:
    """Where ``/files`` and ``/batches`` are: on DashScope the region's plain host (not ``batch.``)."""
    return _swap_host(base_url, batch=False).rstrip("/") if is_dashscope(base_url) else base_url.rstrip("/")


def poll_interval(opts: FileOptions, base_url: str) -> tuple[float, bool]:
    """(first interval, back off while nothing changes?)"""
    dashscope = is_dashscope(base_url)
    if opts.poll_s is not None:
        return opts.poll_s, dashscope
    return (DASHSCOPE_POLL_S, True) if dashscope else (OTHER_POLL_S, False)
