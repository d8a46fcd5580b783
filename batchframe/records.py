"""The small frozen records that flow between the pipeline's steps.

``Request``  one unique chat-completion call: its request hash and the exact JSON body.
``Reply``    what one HTTP attempt produced (success fields, or the error's status/code/message).
``Result``   the final word on one request: ``ok`` or ``failed`` with everything the columns need.
``RowBatch`` rows of a source on their way through the run (their input frame, keys, and what the
             sink needs to write them back).

None of these know anything of pandas (a ``RowBatch`` only carries a frame).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

OK = "ok"
FAILED = "failed"
PENDING = "pending"
GAVE_UP = "gave up after"  # starts the error of a row whose transient errors exhausted its attempts


def is_transient(error: str | None) -> bool:
    """A stored failure worth retrying on the next run (retries ran out, nothing was wrong with it)."""
    return error is not None and error.startswith(GAVE_UP)


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """One unique request. ``rid`` is the request hash (see ``batchframe._requests``)."""

    rid: str
    body: Mapping[str, Any]  # the JSON body POSTed to {base_url}/chat/completions


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    """The outcome of one HTTP attempt, before the engine decides what it means.

    ``status`` is the HTTP status (0 when no response arrived: timeout, dropped connection).
    ``kind`` is ``"ok"``, ``"http"`` (an error body), ``"timeout"``, ``"connection"``, ``"decode"``
    (a 2xx whose body could not be read) or ``"encode"`` (a body that cannot be sent as JSON: never
    sent).
    """

    kind: str
    status: int = 0
    code: str | None = None
    message: str | None = None
    retry_after: float | None = None  # seconds, from Retry-After / retry-after-ms when present
    request_id: str | None = None
    response: str | None = None
    reasoning_content: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    reasoning_tokens: int | None = None
    model: str | None = None
    latency_s: float | None = None
    responses: tuple | None = None      # with n > 1: every choice's text, in order
    logprobs: list | None = None        # per choice: [{token, logprob, top_logprobs: [{token, logprob}]}]
    tool_calls: str | None = None       # JSON text: [{id, name, arguments}] (arguments as sent)
    bad_usage: tuple[str, ...] = ()     # usage fields the server sent malformed (dropped)

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


#: The one reply a transport gives for a call it took back after a stop, never sent (the engine
#: leaves the row pending and does not count the call as sent). Compared by identity.
ABANDONED = Reply(kind="connection", code="abandoned", message="not sent: the run stopped")


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """The final outcome of one unique request (``status`` is ``ok`` or ``failed``)."""

    rid: str
    status: str
    response: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    reasoning_tokens: int | None = None
    reasoning_content: str | None = None
    error: str | None = None
    error_code: str | None = None
    attempts: int = 0
    latency_s: float | None = None
    request_id: str | None = None
    model: str | None = None
    responses: tuple | None = None
    logprobs: list | None = None
    tool_calls: str | None = None
    repairs: int = 0                    # follow-up turns that asked again for a broken JSON answer
    bad_usage: tuple[str, ...] = ()     # not stored: the run says once that some counts were unknown

    @classmethod
    def from_reply(cls, rid: str, reply: Reply, attempts: int) -> "Result":
        return cls(
            rid=rid,
            status=OK,
            response=reply.response,
            finish_reason=reply.finish_reason,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            total_tokens=reply.total_tokens,
            reasoning_tokens=reply.reasoning_tokens,
            reasoning_content=reply.reasoning_content,
            attempts=attempts,
            latency_s=reply.latency_s,
            request_id=reply.request_id,
            model=reply.model,
            responses=reply.responses,
            logprobs=reply.logprobs,
            tool_calls=reply.tool_calls,
            bad_usage=reply.bad_usage,
        )

    @classmethod
    def failure(cls, rid: str, error: str, error_code: str | None, attempts: int,
                reply: Reply | None = None) -> "Result":
        return cls(
            rid=rid,
            status=FAILED,
            error=error,
            error_code=error_code,
            attempts=attempts,
            latency_s=reply.latency_s if reply else None,
            request_id=reply.request_id if reply else None,
        )


@dataclasses.dataclass(slots=True)
class RowBatch:
    """Rows ``start .. start + len(keys)`` of a source."""

    start: int
    frame: Any           # the rows' input columns as a pandas frame (what the rows stage reads)
    keys: list[str]      # each row's checkpoint key (``rows.keys``)
    payload: Any = None  # what the sink needs to write these rows' input columns (an Arrow table, ...)


# The result fields that become columns, in column order, with their pandas dtypes.
RESULT_COLUMNS: dict[str, str] = {
    "response": "string",
    "finish_reason": "string",
    "prompt_tokens": "Int64",
    "completion_tokens": "Int64",
    "total_tokens": "Int64",
    "reasoning_tokens": "Int64",
    "reasoning_content": "string",
    "error": "string",
    "error_code": "string",
    "status": "string",
    "attempts": "Int64",
    "latency_s": "Float64",
    "request_id": "string",
    "cost": "Float64",
}

# Columns of what else a completion returns, in the checkpoint always (null where empty), in a result
# only when their option is used: ``n`` (responses), ``logprobs`` (logprobs), ``tools`` (tool_calls),
# ``max_repairs`` (repairs). Fixed shapes are native Arrow types; free-form JSON (tool calls) is text.
OUTPUT_COLUMNS: tuple[str, ...] = ("responses", "logprobs", "tool_calls", "repairs")


def output_arrow_types() -> dict:
    import pyarrow as pa

    top = pa.struct([("token", pa.large_string()), ("logprob", pa.float64())])
    token = pa.struct([("token", pa.large_string()), ("logprob", pa.float64()),
                       ("top_logprobs", pa.list_(top))])
    return {"responses": pa.list_(pa.large_string()), "logprobs": pa.list_(pa.list_(token)),
            "tool_calls": pa.large_string(), "repairs": pa.int64()}
