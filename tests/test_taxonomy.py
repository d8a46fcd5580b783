"""The error table, one row per case: (reply, action, error_code, throttle)."""

from __future__ import annotations

import pytest

from batchframe.records import Reply
from batchframe.engine.taxonomy import BATCH_CHAT_MODELS, RULES, Action, Verdict, classify

RETRY, FAIL, STOP = Action.RETRY, Action.FAIL_ROW, Action.STOP_RUN


def http(status: int, code: str | None = None, message: str | None = None) -> Reply:
    return Reply(kind="http", status=status, code=code, message=message)


CASES = [
    # -- transport --
    ("client timeout", Reply(kind="timeout"), RETRY, "timeout", False),
    ("connection reset", Reply(kind="connection"), RETRY, "connection_error", False),
    ("2xx body unreadable", Reply(kind="decode", status=200), RETRY, "bad_response", False),
    ("a code set by the client wins", Reply(kind="connection", code="client_error"),
     RETRY, "client_error", False),
    # -- throttling --
    ("generic throttle", http(429, "Throttling", "Requests throttling triggered."), RETRY, "Throttling", True),
    ("RPM native", http(429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later."),
     RETRY, "Throttling.RateQuota", True),
    ("RPM compatible", http(429, "limit_requests", "You exceeded your current requests list."),
     RETRY, "limit_requests", True),
    ("burst native", http(429, "Throttling.BurstRate", "Request rate increased too quickly."),
     RETRY, "Throttling.BurstRate", True),
    ("burst compatible", http(429, "limit_burst_rate", "Request rate increased too quickly."),
     RETRY, "limit_burst_rate", True),
    ("TPM native", http(429, "Throttling.AllocationQuota",
                        "Allocated quota exceeded, please increase your quota limit."),
     RETRY, "Throttling.AllocationQuota", True),
    ("TPM compatible", http(429, "insufficient_quota",
                            "You exceeded your current quota, please check your plan and billing details."),
     RETRY, "insufficient_quota", True),
    ("batch capacity", http(429, "Throttling.AllocationQuota",
                            "Batch requests are being throttled due to system capacity limits."),
     RETRY, "Throttling.AllocationQuota", True),
    ("openai rate limit", http(429, "rate_limit_exceeded", "Rate limit reached for requests"),
     RETRY, "rate_limit_exceeded", True),
    ("429 unknown code", http(429, "SomethingNew", "slow down"), RETRY, "SomethingNew", True),
    ("429 no code", http(429), RETRY, "http_429", True),
    ("code case-insensitive", http(429, "THROTTLING.RATEQUOTA"), RETRY, "THROTTLING.RATEQUOTA", True),
    ("model serving", http(500, "ModelServingError", "Too many requests. Your requests are being throttled."),
     RETRY, "ModelServingError", True),
    ("model unavailable", http(503, "ModelUnavailable", "Model is unavailable, please try again later."),
     RETRY, "ModelUnavailable", True),
    ("503 no code", http(503), RETRY, "http_503", True),
    ("503 InternalError is capacity", http(503, "InternalError", "Service Unavailable"),
     RETRY, "InternalError", True),
    # -- server faults --
    ("internal", http(500, "InternalError", "An internal error has occured, please try again later."),
     RETRY, "InternalError", False),
    ("internal algo", http(500, "InternalError.Algo", "An internal error has occured during execution."),
     RETRY, "InternalError.Algo", False),
    ("system error", http(500, "SystemError", "An system error has occured."), RETRY, "SystemError", False),
    ("model service failed", http(500, "ModelServiceFailed", "Failed to request model service."),
     RETRY, "ModelServiceFailed", False),
    ("request timeout code", http(500, "RequestTimeOut", "Request timed out, please try again later."),
     RETRY, "RequestTimeOut", False),
    ("502 no code", http(502), RETRY, "http_502", False),
    ("504 unknown code", http(504, "GatewayTimeout"), RETRY, "GatewayTimeout", False),
    ("408", http(408), RETRY, "http_408", False),
    # -- this row only --
    ("moderation native", http(400, "DataInspectionFailed", "Input data may contain inappropriate content."),
     FAIL, "DataInspectionFailed", False),
    ("moderation output", http(400, "data_inspection_failed", "Output data may contain inappropriate content."),
     FAIL, "data_inspection_failed", False),
    ("moderation by message", http(400, "InvalidParameter", "Input data may contain inappropriate content."),
     FAIL, "InvalidParameter", False),
    ("azure content filter", http(400, "content_filter", "The response was filtered"),
     FAIL, "content_filter", False),
    ("input too long", http(400, "InvalidParameter", "Range of input length should be [1, 98304]"),
     FAIL, "InvalidParameter", False),
    ("context length", http(400, "invalid_request_error",
                            "This model's maximum context length is 8192 tokens. However, you requested 9000."),
     FAIL, "invalid_request_error", False),
    ("too long, no code", http(400, None, "The input is too long."), FAIL, "http_400", False),
    ("openai context code", http(400, "context_length_exceeded", "Please reduce the length"),
     FAIL, "context_length_exceeded", False),
    ("413", http(413), FAIL, "http_413", False),
    ("unknown InvalidParameter", http(400, "InvalidParameter", "Required parameter(s) missing or invalid."),
     FAIL, "InvalidParameter", False),
    ("422 unknown", http(422, None, "Unprocessable"), FAIL, "http_422", False),
    ("409 unknown code", http(409, "Conflict"), FAIL, "Conflict", False),
    ("200 with an error body", http(200, "weird"), FAIL, "weird", False),
    # -- the whole run --
    ("bad key compatible", http(401, "invalid_api_key", "Incorrect API key provided."),
     STOP, "invalid_api_key", False),
    ("bad key native", http(401, "InvalidApiKey", "Invalid API-key provided."), STOP, "InvalidApiKey", False),
    ("arrearage", http(400, "Arrearage", "Access denied, please make sure your account is in good standing."),
     STOP, "Arrearage", False),
    ("not purchased", http(429, "CommodityNotPurchased", "Commodity has not purchased yet."),
     STOP, "CommodityNotPurchased", False),
    ("prepaid overdue", http(429, "PrepaidBillOverdue", "The prepaid bill is overdue."),
     STOP, "PrepaidBillOverdue", False),
    ("postpaid overdue", http(429, "PostpaidBillOverdue", "The postpaid bill is overdue."),
     STOP, "PostpaidBillOverdue", False),
    ("access denied", http(403, "AccessDenied", "Access denied."), STOP, "AccessDenied", False),
    ("unpurchased", http(403, "AccessDenied.Unpurchased", "Access to model denied."),
     STOP, "AccessDenied.Unpurchased", False),
    ("model access", http(403, "Model.AccessDenied", "Model access denied."), STOP, "Model.AccessDenied", False),
    ("workspace access", http(403, "Workspace.AccessDenied", "Workspace access denied."),
     STOP, "Workspace.AccessDenied", False),
    ("free tier only", http(403, "AllocationQuota.FreeTierOnly",
                            "The free tier of the model has been exhausted."),
     STOP, "AllocationQuota.FreeTierOnly", False),
    ("free quota native", http(429, "Throttling.AllocationQuota", "Free allocated quota exceeded."),
     STOP, "Throttling.AllocationQuota", False),
    ("free quota compatible", http(429, "insufficient_quota", "Free allocated quota exceeded."),
     STOP, "insufficient_quota", False),
    ("model not found", http(404, "model_not_found", "The model `qwen-pluss` does not exist."),
     STOP, "model_not_found", False),
    ("model not found native", http(404, "ModelNotFound", "Model not found."), STOP, "ModelNotFound", False),
    ("model not in batch", http(400, "model_not_supported", "The provided model is not supported by the Batch API."),
     STOP, "model_not_supported", False),
    ("model not exist", http(400, "InvalidParameter", "Model not exist."), STOP, "InvalidParameter", False),
    ("thinking non-stream", http(400, "InvalidParameter",
                                 "parameter.enable_thinking must be set to false for non-streaming calls"),
     STOP, "InvalidParameter", False),
    ("json mode with thinking", http(400, "InvalidParameter",
                                     "The response_format json_object is not supported in thinking mode."),
     STOP, "InvalidParameter", False),
    ("word json", http(400, "invalid_parameter_error",
                       "'messages' must contain the word 'json' in some form, to use 'response_format'."),
     STOP, "invalid_parameter_error", False),
    ("max_tokens range", http(400, "InvalidParameter", "Range of max_tokens should be [1, 8192]"),
     STOP, "InvalidParameter", False),
    ("thinking budget", http(400, "InvalidParameter", "thinking_budget must be a positive integer"),
     STOP, "InvalidParameter", False),
    ("unknown param by message", http(400, None, "Unrecognized request argument supplied: foo"),
     STOP, "http_400", False),
    ("unsupported param code", http(400, "unsupported_parameter", "Unsupported parameter: 'max_tokens'"),
     STOP, "unsupported_parameter", False),
    ("stream only", http(400, "invalid_parameter_error",
                         "This model only support stream mode, please enable the stream parameter."),
     STOP, "invalid_parameter_error", False),
    ("401 unknown", http(401, None, "Unauthorized"), STOP, "http_401", False),
    ("403 unknown code", http(403, "Forbidden"), STOP, "Forbidden", False),
    ("404 wrong path", http(404, None, "Not Found"), STOP, "http_404", False),
]


@pytest.mark.parametrize("reply, action, code, throttle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_classify(reply: Reply, action: Action, code: str, throttle: bool) -> None:
    verdict = classify(reply)
    assert (verdict.action, verdict.code, verdict.throttle) == (action, code, throttle)
    if action is Action.STOP_RUN:
        assert verdict.hint
    assert verdict.hint is None or "\n" not in verdict.hint


# One code, two meanings: the message decides.
AMBIGUOUS = [
    (http(429, "Throttling.AllocationQuota", "Allocated quota exceeded, please increase your quota limit."),
     http(429, "Throttling.AllocationQuota", "Free allocated quota exceeded.")),
    (http(429, "insufficient_quota", "You exceeded your current quota, please check your plan and billing details."),
     http(429, "insufficient_quota", "Free allocated quota exceeded.")),
    (http(400, "InvalidParameter", "Range of input length should be [1, 30720]"),
     http(400, "InvalidParameter", "Range of max_tokens should be [1, 8192]")),
]


@pytest.mark.parametrize("first, second", AMBIGUOUS)
def test_same_code_different_message_different_action(first: Reply, second: Reply) -> None:
    assert first.code == second.code
    assert classify(first).action is not classify(second).action


@pytest.mark.parametrize("reply, needle", [
    (http(401, "InvalidApiKey"), "DASHSCOPE_API_KEY"),
    (http(401, "InvalidApiKey"), "region"),
    (http(403, "AllocationQuota.FreeTierOnly"), "use free tier only"),
    (http(404, "model_not_found"), ", ".join(BATCH_CHAT_MODELS)),
    (http(404), "base_url"),
])
def test_hints(reply: Reply, needle: str) -> None:
    assert needle in (classify(reply).hint or "")


def test_config_suspect_only_for_unexplained_4xx() -> None:
    assert classify(http(400, "InvalidParameter", "Required parameter(s) missing or invalid.")).config_suspect
    assert classify(http(418)).config_suspect
    assert not classify(http(400, "DataInspectionFailed")).config_suspect
    assert not classify(http(400, "InvalidParameter", "Range of input length should be [1, 30720]")).config_suspect
    assert not classify(http(500)).config_suspect


def test_missing_message_and_blank_code() -> None:
    assert classify(http(400, "  ")) == Verdict(Action.FAIL_ROW, "http_400", False, classify(http(400)).hint, True)


@pytest.mark.parametrize("kind", ["ok", "nonsense"])
def test_classify_refuses_non_failures(kind: str) -> None:
    with pytest.raises(ValueError):
        classify(Reply(kind=kind, status=200))


def test_table_is_data() -> None:
    assert len(RULES) > 20
    assert all(rule.action in Action for rule in RULES)


# Which pushback a throttle is: "rate" slows the send rate, "pending" and "capacity" cut the calls
# in flight. The simulator's own 429 messages are among them (batchframe/simulator/_app.py).
PRESSURE_CASES = [
    ("sim qps cap", http(429, "limit_requests", "Requests rate limit exceeded, please try again later."), "rate"),
    ("sim pending cap", http(429, "limit_requests", "Too many pending requests for this model, please retry "
                                                    "later."), "pending"),
    ("sim burst", http(429, "limit_burst_rate", "Request rate increased too quickly, please slow down and ramp "
                                                "up gradually."), "rate"),
    ("sim throttle fault", http(429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again "
                                                             "later."), "rate"),
    ("burst native", http(429, "Throttling.BurstRate", "Request rate increased too quickly."), "rate"),
    ("RPM compatible", http(429, "limit_requests", "You exceeded your current requests list."), "rate"),
    ("TPM", http(429, "Throttling.AllocationQuota", "Allocated quota exceeded, please increase your quota limit."),
     "rate"),
    ("TPM compatible", http(429, "insufficient_quota", "You exceeded your current quota"), "rate"),
    ("batch capacity", http(429, "Throttling.AllocationQuota",
                            "Batch requests are being throttled due to system capacity limits."), "capacity"),
    ("generic throttle", http(429, "Throttling", "Requests throttling triggered."), "rate"),
    ("generic pending", http(429, "Throttling", "Too many pending requests"), "pending"),
    ("queue full, no code", http(429, None, "Request queue is full"), "pending"),
    ("concurrency, other code", http(429, "SomethingNew", "Concurrency limit exceeded"), "pending"),
    ("429 no code", http(429), "rate"),
    ("openai", http(429, "rate_limit_exceeded", "Rate limit reached for requests"), "rate"),
    ("model serving", http(500, "ModelServingError", "Too many requests."), "capacity"),
    ("503", http(503), "capacity"),
    ("500 is no pushback", http(500, "InternalError", "oops"), None),
    ("timeout is no pushback", Reply(kind="timeout"), None),
    ("billing on a 429 still stops", http(429, "PrepaidBillOverdue", "Too many pending requests"), None),
]


@pytest.mark.parametrize("reply, pressure", [c[1:] for c in PRESSURE_CASES], ids=[c[0] for c in PRESSURE_CASES])
def test_pressure(reply: Reply, pressure: str | None) -> None:
    verdict = classify(reply)
    assert verdict.pressure == pressure
    assert verdict.throttle == (pressure is not None)
