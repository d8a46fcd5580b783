"""The simulator's counters and admission state (pending per model, request-rate windows).

Mutated from the server's event loop, read from any thread: every access holds one lock.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from ._completion import Usage

#: by_status value for a connection closed with no answer (dropped, server timeout)
STATUS_NO_ANSWER = 0
#: by_status value for a request whose client went away before the answer (nginx's convention)
STATUS_CLIENT_CLOSED = 499

_QPS_WINDOW_S = 1.0
_BURST_WINDOW_S = 0.1


class Stats:
    """Counters of what the simulator received and answered; see :meth:`snapshot` for the keys."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}
        self._accepted: deque[float] = deque()  # arrival times admitted by the QPS limit, last 1 s
        self._arrivals: deque[float] = deque()  # arrival times, last 100 ms (burst limit)
        self._files_stored = 0  # state, not counters: reset() keeps them
        self._batches: dict[str, int] = {}
        self.reset()

    def reset(self) -> None:
        """Zero the counters and attempt numbers; requests in flight stay pending."""
        with self._lock:
            self._requests = 0
            self._by_status: dict[int, int] = {}
            self._by_code: dict[str, int] = {}
            self._attempts: dict[bytes, int] = {}
            self._wins: dict[bytes, int] = {}
            self._per_prompt: dict[str, int] = {}
            self._billed_per_prompt: dict[str, int] = {}
            self._successes = 0
            self._prompt_tokens = self._completion_tokens = self._reasoning_tokens = 0
            self._peak_pending = sum(self._pending.values())
            self._peak_per_model = {m: n for m, n in self._pending.items() if n}
            self._peak_qps = 0
            self._files_uploaded = self._files_deleted = self._batches_created = 0
            self._lines = self._lines_billed = 0
            self._lines_by_status: dict[int, int] = {}
            self._lines_by_code: dict[str, int] = {}

    def arrive(self) -> None:
        with self._lock:
            self._requests += 1

    def attempt(self, key: bytes, prompt: str) -> int:
        """Record one arrival of the body ``key``; return how many times it was seen before."""
        with self._lock:
            seen = self._attempts.get(key, 0)
            self._attempts[key] = seen + 1
            self._per_prompt[prompt] = self._per_prompt.get(prompt, 0) + 1
            return seen

    def admit_rate(self, now: float, max_qps: float | None, burst_limit: int | None) -> str | None:
        """Apply the burst and QPS limits to an arrival at ``now``: None, "burst" or "qps"."""
        with self._lock:
            if burst_limit is not None:
                arrivals = self._arrivals
                while arrivals and arrivals[0] <= now - _BURST_WINDOW_S:
                    arrivals.popleft()
                arrivals.append(now)
                if len(arrivals) > burst_limit:
                    return "burst"
            accepted = self._accepted
            while accepted and accepted[0] <= now - _QPS_WINDOW_S:
                accepted.popleft()
            if max_qps is not None and len(accepted) >= max_qps:
                return "qps"
            accepted.append(now)
            self._peak_qps = max(self._peak_qps, len(accepted))
            return None

    def enter(self, model: str, max_pending: int | None) -> bool:
        """Count a request as pending for ``model`` unless that would exceed ``max_pending``."""
        with self._lock:
            pending = self._pending.get(model, 0)
            if max_pending is not None and pending >= max_pending:
                return False
            self._pending[model] = pending + 1
            self._peak_per_model[model] = max(self._peak_per_model.get(model, 0), pending + 1)
            self._peak_pending = max(self._peak_pending, sum(self._pending.values()))
            return True

    def leave(self, model: str) -> None:
        with self._lock:
            self._pending[model] -= 1

    def finish(self, status: int, code: str | None) -> None:
        """Record an answer that is not a success (an error, a closed connection, a bad body)."""
        with self._lock:
            self._by_status[status] = self._by_status.get(status, 0) + 1
            if code:
                self._by_code[code] = self._by_code.get(code, 0) + 1

    def success(self, key: bytes, usage: Usage, prompt: str) -> None:
        """Record a billed 200 answer to the body ``key`` (whose last user message is ``prompt``)."""
        with self._lock:
            self._by_status[200] = self._by_status.get(200, 0) + 1
            self._successes += 1
            self._bill(key, usage, prompt)

    def _bill(self, key: bytes, usage: Usage, prompt: str) -> None:
        """Count one billed answer (the lock is held)."""
        self._wins[key] = self._wins.get(key, 0) + 1
        self._billed_per_prompt[prompt] = self._billed_per_prompt.get(prompt, 0) + 1
        self._prompt_tokens += usage.prompt_tokens
        self._completion_tokens += usage.completion_tokens
        self._reasoning_tokens += usage.reasoning_tokens

    def file_stored(self, *, uploaded: bool) -> None:
        """A file now exists: uploaded by a client, or a batch's output or error file."""
        with self._lock:
            self._files_stored += 1
            self._files_uploaded += uploaded

    def file_deleted(self) -> None:
        with self._lock:
            self._files_stored -= 1
            self._files_deleted += 1

    def batch_moved(self, old: str | None, new: str) -> None:
        """A batch changed status (``old`` None: it was just created)."""
        with self._lock:
            if old is None:
                self._batches_created += 1
            else:
                self._batches[old] -= 1
            self._batches[new] = self._batches.get(new, 0) + 1

    def line(self, status: int | None, code: str | None,
             billed: tuple[bytes, Usage, str] | None = None) -> None:
        """Record a batch line: run (``status``; ``billed`` = (body key, usage, prompt) when billed) or,
        with ``status`` None, not run (an expired or cancelled batch's error line, by ``code``)."""
        with self._lock:
            if status is not None:
                self._lines += 1
                self._lines_by_status[status] = self._lines_by_status.get(status, 0) + 1
            if code:
                self._lines_by_code[code] = self._lines_by_code.get(code, 0) + 1
            if billed is not None:
                self._lines_billed += 1
                self._bill(*billed)

    def snapshot(self) -> dict[str, Any]:
        """A plain-dict copy of the counters (JSON-serialisable apart from the int keys of by_status)."""
        with self._lock:
            distinct = len(self._wins)
            return {
                "requests": self._requests,
                "by_status": dict(self._by_status),
                "by_code": dict(self._by_code),
                "successes": self._successes,
                "billed": self._successes + self._lines_billed,
                "distinct_bodies": len(self._attempts),
                "distinct_successes": distinct,
                "duplicate_successes": self._successes + self._lines_billed - distinct,
                "attempts_per_prompt": dict(self._per_prompt),
                "billed_per_prompt": dict(self._billed_per_prompt),
                "pending": sum(self._pending.values()),
                "peak_pending": self._peak_pending,
                "peak_pending_per_model": dict(self._peak_per_model),
                "peak_qps": self._peak_qps,
                "prompt_tokens": self._prompt_tokens,
                "completion_tokens": self._completion_tokens,
                "reasoning_tokens": self._reasoning_tokens,
                "files_uploaded": self._files_uploaded,
                "files_stored": self._files_stored,
                "files_deleted": self._files_deleted,
                "batches_created": self._batches_created,
                "batches": {status: n for status, n in self._batches.items() if n},
                "lines": self._lines,
                "lines_billed": self._lines_billed,
                "lines_by_status": dict(self._lines_by_status),
                "lines_by_code": dict(self._lines_by_code),
            }
