"""The error taxonomy: what one failed attempt means for its row and for the run.

``classify(reply)`` walks one ordered table, ``RULES``, and the first rule that matches decides. A rule
looks at the reply's kind, its HTTP status, its provider code (compared case-insensitively) and a regular
expression searched in its message; any of these may be left open. To extend the table, add a row in the
right place: code + message rows before code-only rows, code rows before status-only catch-alls.

Status, code *and* message are read together because one code can mean several things on DashScope:
``Throttling.AllocationQuota`` / ``insufficient_quota`` is a token-rate limit (retry), a batch-capacity
throttle (retry) or "Free allocated quota exceeded." (stop the run); ``InvalidParameter`` is a prompt that
is too long for this row (fail the row) or a request option every row carries (stop the run).

Source of truth: the DashScope error table in the project's reference notes; a few OpenAI-compatible
codes (``rate_limit_exceeded``, ``context_length_exceeded``, ``content_filter``, ``unknown_parameter``)
are added so that other endpoints are classified sensibly too. Nothing here reads or returns request
headers, so no credential can leak through a ``Verdict``.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from typing import Container

from ..records import Reply


class Action(enum.Enum):
    RETRY = "retry"          # try the same request again (after a backoff)
    FAIL_ROW = "fail_row"    # give up on this row only; the run goes on
    STOP_RUN = "stop_run"    # every row would fail the same way: stop dispatching


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    code: str  # error_code: the provider code, else timeout/connection_error/bad_response/http_<status>
    throttle: bool  # the server pushed back: ``pressure`` says how
    hint: str | None  # one sentence on what the user should do (always set for STOP_RUN)
    config_suspect: bool = False  # an unexplained 4xx: the engine stops if the first rows all fail with it
    # What kind of pushback (None when not throttled): "rate" (requests per second, or tokens per
    # minute: slow the send rate), "pending" (the queue of pending requests is full: fewer in flight),
    # "capacity" (the server is busy: fewer in flight).
    pressure: str | None = None


# The models the Batch Chat page lists (text, image and video), for the "unknown model" hint.
BATCH_CHAT_MODELS: tuple[str, ...] = (
    "qwen3.5-plus", "qwen3.5-flash", "qwen3-max", "qwen-plus", "qwen-flash", "deepseek-v3.2",
    "qwen3-vl-plus", "qwen3-vl-flash",
)

HINT_KEY = ("Check DASHSCOPE_API_KEY (or the api_key you passed), and that the key was issued for the "
            "same region as base_url (a Chinese Mainland key does not work on the international "
            "endpoint, nor the reverse).")
HINT_AUTH = ("The endpoint refused the credentials: check the API key, its region, and that it may "
             "call this model.")
HINT_BILLING = ("The account is overdue or the model is not purchased: settle the bill or activate "
                "the model in the Alibaba Cloud / Model Studio console, then resume the run.")
HINT_ACCESS = ("This key may not use this model or workspace: activate the model in the Model Studio "
               "console, or use a key from a workspace that has access to it.")
HINT_FREE_TIER_ONLY = ('The free quota is used up and "use free tier only" is on: switch it off in the '
                       "Model Studio console to continue on pay-as-you-go.")
HINT_FREE_QUOTA = ("The free allocated quota is used up: enable pay-as-you-go billing (and switch off "
                   '"use free tier only") in the Model Studio console, then resume the run.')
HINT_MODEL = ("Check the model name (it is case-sensitive); the Batch Chat endpoint serves: "
              + ", ".join(BATCH_CHAT_MODELS) + ".")
HINT_BASE_URL = ("Nothing answers at this path: check base_url (Batch Chat: "
                 "https://batch.dashscope.aliyuncs.com/compatible-mode/v1, without /chat/completions).")
HINT_CONFIG = ("A request option is rejected, so every row would fail the same way: fix the option the "
               "message names (e.g. enable_thinking=False for JSON mode, the word 'json' in the prompt "
               "for response_format json_object, max_tokens within the model's range).")
HINT_MODERATION = ("Content moderation blocked this row's input or output: it will fail every time; "
                   "edit or drop the row.")
HINT_TOO_LONG = ("The prompt is longer than the model accepts: shorten this row, or use a model with a "
                 "longer context.")
HINT_MEDIA = "An image or video in this row could not be read: check its URL and format."
HINT_ENCODE = ("This row's request cannot be encoded as JSON (e.g. a lone surrogate character in its "
               "text): fix the row's text.")
HINT_SUSPECT = ("The endpoint rejected this request; if every row fails like this, the request "
                "configuration is wrong.")

_4XX = range(400, 500)
_5XX = range(500, 600)


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table. Open fields (None) match anything; all set fields must match."""

    action: Action
    kind: str = "http"
    status: Container[int] | None = None
    codes: frozenset[str] | None = None  # case-folded
    message: re.Pattern[str] | None = None
    throttle: bool = False
    hint: str | None = None
    config_suspect: bool = False
    code: str | None = None  # the error_code when the reply carries none (transport failures)
    pressure: str | None = None  # with throttle: "rate", "pending" or "capacity"

    def matches(self, reply: Reply) -> bool:
        if reply.kind != self.kind:
            return False
        if self.status is not None and reply.status not in self.status:
            return False
        if self.codes is not None and (reply.code or "").strip().casefold() not in self.codes:
            return False
        return self.message is None or self.message.search(reply.message or "") is not None


def _rule(action: Action, *, kind: str = "http", status: Container[int] | None = None,
          codes: tuple[str, ...] | None = None, message: str | None = None, throttle: bool = False,
          hint: str | None = None, config_suspect: bool = False, code: str | None = None,
          pressure: str | None = None) -> Rule:
    assert (pressure is not None) == throttle and pressure in (None, "rate", "pending", "capacity")
    return Rule(
        action, kind=kind, status=status,
        codes=None if codes is None else frozenset(c.casefold() for c in codes),
        message=None if message is None else re.compile(message, re.IGNORECASE),
        throttle=throttle, hint=hint, config_suspect=config_suspect, code=code, pressure=pressure,
    )


RETRY, FAIL_ROW, STOP_RUN = Action.RETRY, Action.FAIL_ROW, Action.STOP_RUN

# The prompt is too long: depends on the row, so only the row fails.
_TOO_LONG = (r"range of input length should be|maximum context length|too long|input length"
             r"|context length exceeded|exceeds? the (?:maximum|max) (?:context|input)")
# An option every request carries: the whole run would fail the same way.
_CONFIG = (r"enable_thinking|thinking_budget|response_format|json_object|json mode"
           r"|must contain the word\W{0,3}json|max_tokens|max_completion_tokens"
           r"|(?:unknown|unrecognized|unsupported|invalid) (?:request )?(?:parameter|argument)"
           r"|extra (?:fields|inputs) (?:are )?not permitted|only supports? stream"
           r"|does not support http call|range of n should be|\bn must be|top_logprobs|logprobs")

# A 429 about the queue of pending requests (DashScope: "Too many pending requests for this model").
_PENDING = (r"too many pending|pending requests|queue (?:is )?full|(?:concurrency|concurrent requests?) "
            r"(?:limit|exceeded)|too many concurrent")

RULES: tuple[Rule, ...] = (
    # -- no usable HTTP answer: always worth another try (bounded by the retry policy) --
    _rule(RETRY, kind="timeout", code="timeout"),
    _rule(RETRY, kind="connection", code="connection_error"),
    _rule(RETRY, kind="decode", code="bad_response"),
    _rule(FAIL_ROW, kind="encode", code="invalid_request_body", hint=HINT_ENCODE),
    # -- account, key, billing, model: the same for every row, so stop --
    _rule(STOP_RUN, codes=("InvalidApiKey", "invalid_api_key"), hint=HINT_KEY),
    _rule(STOP_RUN, codes=("Arrearage", "CommodityNotPurchased", "PrepaidBillOverdue",
                           "PostpaidBillOverdue"), hint=HINT_BILLING),
    _rule(STOP_RUN, codes=("AllocationQuota.FreeTierOnly",), hint=HINT_FREE_TIER_ONLY),
    _rule(STOP_RUN, codes=("AccessDenied", "AccessDenied.Unpurchased", "Model.AccessDenied",
                           "Workspace.AccessDenied"), hint=HINT_ACCESS),
    _rule(STOP_RUN, codes=("ModelNotFound", "model_not_found", "model_not_supported"),
          hint=HINT_MODEL),
    # "Free allocated quota exceeded." comes as Throttling.AllocationQuota but is not a rate limit.
    _rule(STOP_RUN, status=(429,), hint=HINT_FREE_QUOTA,
          message=r"free allocated quota|free (?:tier|quota)\b.*\b(?:exhausted|exceeded|used up)"),
    # -- throttling: retry, and tell the limiter which pressure it is --
    # the pending queue is full ("Too many pending requests"): fewer calls in flight
    _rule(RETRY, status=(429,), message=_PENDING, throttle=True, pressure="pending"),
    _rule(RETRY, codes=("Throttling", "limit_requests", "Throttling.AllocationQuota"), message=_PENDING,
          throttle=True, pressure="pending"),
    # "Batch requests are being throttled due to system capacity limits.": the server is busy
    _rule(RETRY, codes=("Throttling.AllocationQuota", "insufficient_quota", "Throttling"),
          message=r"capacity", throttle=True, pressure="capacity"),
    # requests per second / minute, bursts, token rate: slow the send rate
    _rule(RETRY, codes=("Throttling", "Throttling.RateQuota", "limit_requests", "Throttling.BurstRate",
                        "limit_burst_rate", "Throttling.AllocationQuota", "insufficient_quota",
                        "rate_limit_exceeded"), throttle=True, pressure="rate"),
    _rule(RETRY, codes=("ModelServingError", "ModelUnavailable"), throttle=True, pressure="capacity"),
    _rule(RETRY, status=(503,), throttle=True, pressure="capacity"),
    # -- server faults: retry --
    _rule(RETRY, codes=("InternalError", "InternalError.Algo", "SystemError", "ModelServiceFailed",
                        "RequestTimeOut")),
    # -- this row's content: fail the row, never retry --
    _rule(FAIL_ROW, codes=("DataInspectionFailed", "data_inspection_failed", "content_filter",
                           "content_policy_violation"), hint=HINT_MODERATION),
    _rule(FAIL_ROW, codes=("InvalidParameter.DataInspection",), hint=HINT_MEDIA, config_suspect=True),
    _rule(FAIL_ROW, status=(400,), message=r"inappropriate content|sensitive content"
          r"|content (?:management |moderation )?polic|content filter", hint=HINT_MODERATION),
    _rule(FAIL_ROW, codes=("context_length_exceeded", "string_above_max_length"), hint=HINT_TOO_LONG),
    _rule(FAIL_ROW, status=(400,), message=_TOO_LONG, hint=HINT_TOO_LONG),
    _rule(FAIL_ROW, status=(413,), hint=HINT_TOO_LONG),
    # -- a request option every row carries: stop --
    _rule(STOP_RUN, codes=("unknown_parameter", "unsupported_parameter", "unsupported_value"),
          hint=HINT_CONFIG),
    _rule(STOP_RUN, status=(400,), message=r"model not exists?\b|not supported by the batch",
          hint=HINT_MODEL),
    _rule(STOP_RUN, status=(400,), message=_CONFIG, hint=HINT_CONFIG),
    # -- catch-alls by status --
    _rule(RETRY, status=(408,)),
    _rule(RETRY, status=(429,), throttle=True, pressure="rate"),
    _rule(STOP_RUN, status=(401, 403), hint=HINT_AUTH),
    _rule(STOP_RUN, status=(404,), hint=HINT_BASE_URL),
    # llama-cpp-python answers a bad parameter with 500 "N validation error(s)": not transient
    _rule(FAIL_ROW, status=(500,), message=r"^\d+ validation errors?\b", hint=HINT_CONFIG,
          config_suspect=True),
    _rule(RETRY, status=_5XX),
    _rule(FAIL_ROW, status=_4XX, hint=HINT_SUSPECT, config_suspect=True),
)

# An error body with a status outside 4xx/5xx (a proxy's 2xx/3xx error page): unexplained, row-local.
_DEFAULT = _rule(FAIL_ROW, hint=HINT_SUSPECT, config_suspect=True)

_KINDS = frozenset({"http", "timeout", "connection", "decode", "encode"})


def classify(reply: Reply) -> Verdict:
    """What a failed attempt means: retry it, fail its row, or stop the run."""
    if reply.kind not in _KINDS:
        raise ValueError(f"classify() takes a failed reply, not kind={reply.kind!r}")
    rule = next((r for r in RULES if r.matches(reply)), _DEFAULT)
    code = (reply.code or "").strip() or rule.code or f"http_{reply.status}"
    return Verdict(rule.action, code, rule.throttle, rule.hint, rule.config_suspect, rule.pressure)
