"""The control plane: files and batches through an openai client, each call with bounded retries.

Built on ``openai.OpenAI`` (``max_retries=0``: the retries here are the only ones; the Batch Chat
engine owns the chat calls' retries, this owns these), from the run's file base URL and key, or
from a user's client (``with_options(max_retries=0)``). Failures are read as the chat wire reads
them (``engine.wire``) and judged by the same taxonomy: retryable ones are retried with the run's
backoff, up to ``ATTEMPTS``; anything else raises ``ControlError`` (a ``RunFatalError``: the job
stops, what finished is saved, the same call re-attaches).

Creating a batch is not idempotent: when a create's outcome is unknown (a timeout, a dropped
connection, a 5xx) the batch list is searched (metadata ``ds_name`` names the job and the chunk,
plus the input file id) before anything is created again; an upload likewise looks for its file
name. Downloads stream line by line and resume after a failure where they stopped.
"""

from __future__ import annotations

import dataclasses
import random
import time
from typing import Any, Callable, Iterator

from ..engine.retry import RetryPolicy, backoff_s
from ..engine.taxonomy import Action, classify
from ..engine.clients import failure_reply
from ..exceptions import RunFatalError
from ..pipeline.redact import Redactor

ATTEMPTS = 6
SMALL_TIMEOUT_S = 120.0   # retrieve, create, list, cancel, delete (uploads and downloads: the run's timeout)
LIST_PAGES = 20
_CHUNK = 1 << 16


class ControlError(RunFatalError):
    """A files/batches call that failed for good."""


class Interrupted(Exception):
    """The run was asked to stop while a call waited to be retried."""


@dataclasses.dataclass(frozen=True)
class BatchView:
    id: str
    status: str
    input_file_id: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    created_at: int | None = None
    expires_at: int | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: tuple = ()
    metadata: dict | None = None

    @classmethod
    def of(cls, b: Any) -> "BatchView":
        counts = getattr(b, "request_counts", None)
        errors = getattr(getattr(b, "errors", None), "data", None) or ()
        return cls(id=b.id, status=b.status, input_file_id=getattr(b, "input_file_id", None),
                   total=getattr(counts, "total", 0) or 0, completed=getattr(counts, "completed", 0) or 0,
                   failed=getattr(counts, "failed", 0) or 0, created_at=getattr(b, "created_at", None),
                   expires_at=getattr(b, "expires_at", None), output_file_id=getattr(b, "output_file_id", None),
                   error_file_id=getattr(b, "error_file_id", None),
                   errors=tuple({"code": getattr(e, "code", None), "message": getattr(e, "message", None),
                                 "line": getattr(e, "line", None)} for e in errors),
                   metadata=dict(getattr(b, "metadata", None) or {}))


def make_client(base_url: str, api_key: str | None, timeout: float, client: Any = None) -> Any:
    """The openai client of the control plane (a user's own, without its retries, when given: on
    DashScope the files and batches live on the region's plain host, not the ``batch.`` one)."""
    if client is not None:
        return client.with_options(max_retries=0, base_url=base_url)
    import httpx2
    import openai

    return openai.OpenAI(base_url=base_url, api_key=api_key or "not-needed", max_retries=0,
                         timeout=httpx2.Timeout(timeout, connect=min(timeout, 30.0)))


class Control:
    def __init__(self, client: Any, *, timeout: float, retry: RetryPolicy, dashscope: bool,
                 redact: Redactor, wait: Callable[[float], bool] | None = None,
                 rand: Callable[[], float] = random.random, owned: bool = True) -> None:
        self.client, self.owned = client, owned
        self.timeout = timeout
        self.small = min(timeout, SMALL_TIMEOUT_S)
        self.retry, self.dashscope, self.redact = retry, dashscope, redact
        self._wait = wait or (lambda s: (time.sleep(s), False)[1])  # True: stop asked, do not retry
        self._rand = rand

    def __repr__(self) -> str:
        return f"Control(dashscope={self.dashscope})"

    # ---- the retry loop ------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], Any], *, heal: Callable[[], Any] | None = None) -> Any:
        attempts = 0
        while True:
            attempts += 1
            start = time.monotonic()
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001  (what is not a wire outcome is re-raised below)
                reply = failure_reply(exc, start, self.timeout)
            verdict = classify(reply)
            unknown = reply.kind in ("timeout", "connection") or reply.status >= 500
            if heal is not None and unknown:  # it may have happened all the same: look before redoing it
                found = heal()
                if found is not None:
                    return found
            if verdict.action is Action.RETRY and attempts < ATTEMPTS:
                delay = backoff_s(verdict, attempts=attempts, policy=self.retry, retry_after=reply.retry_after,
                                  rand=self._rand)
                if self._wait(delay):
                    raise Interrupted(what)
                continue
            code = verdict.code
            message = self.redact.text(f"{what}: the server answered {reply.status or ''} {code}: "
                                       f"{reply.message}".replace("  ", " "))
            if verdict.hint and verdict.action is Action.STOP_RUN:
                message += f". {verdict.hint}"
            raise ControlError(message, status=reply.status, code=code,
                               provider_message=self.redact.text(reply.message), hint=verdict.hint)

    # ---- files ---------------------------------------------------------------------------------
    def upload(self, path: str, filename: str, nbytes: int) -> str:
        def go() -> str:
            with open(path, "rb") as fh:  # streamed from disk
                return self.client.files.create(file=(filename, fh), purpose="batch", timeout=self.timeout).id
        return self._call(f"uploading {filename}", go, heal=lambda: self.find_file(filename, nbytes))

    def find_file(self, filename: str, nbytes: int) -> str | None:
        """An uploaded file of this name and size (best effort: None when the list is not there)."""
        try:
            page = self.client.files.list(purpose="batch", limit=100, timeout=self.small)
            for _ in range(LIST_PAGES):
                for f in page.data:
                    if f.filename == filename and f.bytes == nbytes:
                        return f.id
                if not page.has_next_page():
                    return None
                page = page.get_next_page()
        except Exception:  # noqa: BLE001  healing is best effort; a new upload is the fallback
            return None
        return None

    def lines(self, file_id: str) -> Iterator[bytes]:
        """The file's lines (non-empty), streamed; a broken download resumes after the last line given."""
        given = 0
        attempts = 0
        while True:
            attempts += 1
            start = time.monotonic()
            try:
                seen = 0
                with self.client.files.with_streaming_response.content(file_id, timeout=self.timeout) as resp:
                    pieces: list[bytes] = []
                    for chunk in resp.iter_bytes(_CHUNK):
                        if b"\n" not in chunk:
                            pieces.append(chunk)
                            continue
                        pieces.append(chunk)
                        *whole, rest = b"".join(pieces).split(b"\n")
                        pieces = [rest] if rest else []
                        for line in whole:
                            seen += 1
                            if seen > given:
                                given = seen
                                if line.strip():
                                    yield line
                    tail = b"".join(pieces)
                    if tail.strip() and seen + 1 > given:
                        given = seen + 1
                        yield tail
                return
            except Exception as exc:  # noqa: BLE001
                reply = failure_reply(exc, start, self.timeout)
            verdict = classify(reply)
            if verdict.action is Action.RETRY and attempts < ATTEMPTS:
                if self._wait(backoff_s(verdict, attempts=attempts, policy=self.retry,
                                        retry_after=reply.retry_after, rand=self._rand)):
                    raise Interrupted(f"downloading {file_id}")
                continue
            raise ControlError(self.redact.text(f"downloading {file_id}: {reply.status} {verdict.code}: "
                                                f"{reply.message}"), status=reply.status, code=verdict.code)

    def delete(self, file_id: str) -> None:
        try:
            self._call(f"deleting {file_id}", lambda: self.client.files.delete(file_id, timeout=self.small))
        except ControlError as exc:
            if exc.status != 404:  # already gone is fine
                raise

    # ---- batches -------------------------------------------------------------------------------
    def create(self, *, file_id: str, endpoint: str, window: str, metadata: dict, since: float) -> BatchView:
        def go() -> BatchView:
            return BatchView.of(self.client.batches.create(input_file_id=file_id, endpoint=endpoint,
                                                           completion_window=window, metadata=metadata,
                                                           timeout=self.small))
        return self._call(f"creating the batch of {file_id}", go,
                          heal=lambda: self.find_batch(file_id, metadata["ds_name"], since))

    def find_batch(self, file_id: str, ds_name: str, since: float) -> BatchView | None:
        """The batch made from ``file_id`` with this ``ds_name``, if one exists (newest first; stops at
        batches older than ``since`` less a day of clock skew)."""
        query = {"ds_name": ds_name, "input_file_ids": file_id} if self.dashscope else None
        page = self._call("listing batches", lambda: self.client.batches.list(limit=100, extra_query=query,
                                                                              timeout=self.small))
        for _ in range(LIST_PAGES):
            for b in page.data:
                if b.input_file_id == file_id and (b.metadata or {}).get("ds_name") == ds_name:
                    return BatchView.of(b)
                if b.created_at is not None and b.created_at < since - 86_400:
                    return None
            if not page.has_next_page():
                return None
            page = self._call("listing batches", page.get_next_page)
        return None

    def retrieve(self, batch_id: str) -> BatchView:
        return BatchView.of(self._call(f"retrieving {batch_id}",
                                       lambda: self.client.batches.retrieve(batch_id, timeout=self.small)))

    def cancel(self, batch_id: str) -> BatchView:
        try:
            return BatchView.of(self._call(f"cancelling {batch_id}",
                                           lambda: self.client.batches.cancel(batch_id, timeout=self.small)))
        except ControlError as exc:
            if exc.status == 409:  # already done: nothing to cancel
                return self.retrieve(batch_id)
            raise

    def close(self) -> None:
        if self.owned:  # a user's client (and its connections) stays theirs
            self.client.close()
