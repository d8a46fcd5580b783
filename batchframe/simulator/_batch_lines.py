"""A batch's lines: validating the input file, and answering each line as a chat call would be answered.

Validation fails the whole batch (the errors are the batch's ``errors.data``): an empty file, over
``batch_max_bytes`` bytes or ``batch_max_lines`` lines (``batch_test_max_lines`` with the free test
model), a line that is not a JSON object (``invalid_json_line``), a missing ``custom_id`` / ``method`` /
``url`` / ``body`` (``missing_required_parameter``), a ``url`` other than the batch's endpoint
(``invalid_url``), a repeated ``custom_id`` (``duplicate_custom_id``), a second model
(``mismatched_model``) or thinking mode (``mismatched_thinking_mode``), an unknown model
(``model_not_found``), ``stream`` (``streaming_unsupported``).

Each valid line is then answered by the chat call's own rules and composer: error rules, moderation,
the per-attempt faults (throttle, 500, 503 become error lines; a dropped connection, a server timeout
or a bad body lose the line: it is in neither file), drawn from (seed, line body, attempt) with the
attempt numbers shared with chat calls. Successes are billed, except the free test model's.
"""

from __future__ import annotations

import uuid
from array import array
from dataclasses import dataclass, field
from hashlib import blake2b
from pathlib import Path
from typing import Any

import orjson

from ._completion import Usage, completion_body, prompt_tokens
from ._config import SimConfig
from ._draw import Draw, body_key
from ._outputs import Composer
from ._responder import last_user_text
from ._rules import ChatError, Rules, fault_error
from ._stats import STATUS_NO_ANSWER, Stats
from ._subdraw import token, unit

TEST_MODEL = "batch-test-model"
TEST_ENDPOINT = "/v1/chat/ds-test"
TEST_ANSWER = "This is a test result."
#: at most this many validation errors are reported
MAX_ERRORS = 100
_LOST = {"drop": "connection_dropped", "timeout": "server_timeout", "bad_body": "bad_body"}


def _error(code: str, message: str, line: int | None = None, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "line": line, "message": message, "param": param}


@dataclass
class Scan:
    """What validation learnt of an input file: where each line starts and ends, or why it failed."""

    starts: array = field(default_factory=lambda: array("Q"))
    ends: array = field(default_factory=lambda: array("Q"))
    digest: bytes = b""
    errors: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.starts)


def _thinking_mode(config: SimConfig, model: str, body: dict[str, Any]) -> bool:
    default = config.thinking_models.get(model)
    enable = body.get("enable_thinking")
    if default is None:
        return False
    return enable if isinstance(enable, bool) else default


def _check_line(line: Any, number: int, endpoint: str) -> dict[str, Any] | None:
    """The first thing wrong with one parsed line on its own, or None."""
    if not isinstance(line, dict):
        return _error("invalid_json_line", "This line is not parseable as valid JSON.", number)
    for name in ("custom_id", "method", "url", "body"):
        if name not in line:
            return _error("missing_required_parameter", f"Missing required parameter: '{name}'.", number, name)
    if not isinstance(line["custom_id"], str) or not line["custom_id"]:
        return _error("invalid_request", "custom_id must be a non-empty string.", number, "custom_id")
    if line["method"] != "POST":
        return _error("invalid_request", "Only the POST method is supported.", number, "method")
    if line["url"] != endpoint:
        return _error("invalid_url", "The URL provided for this request does not match the batch endpoint.",
                      number, "url")
    body = line["body"]
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return _error("invalid_request", "Model parameter is required.", number, "body.model")
    if not isinstance(body.get("messages"), list):
        return _error("invalid_request", "Messages parameter is required.", number, "body.messages")
    if body.get("stream"):
        return _error("streaming_unsupported",
                      "Chat Completions: Streaming is not supported in the Batch API.", number, "body.stream")
    return None


def scan_input(path: Path, size: int, endpoint: str, config: SimConfig) -> Scan:
    """Validate the input file at ``path`` (``size`` bytes) for a batch on ``endpoint``."""
    scan = Scan()
    if size > config.batch_max_bytes:
        scan.errors.append(_error("file_too_large", f"The input file has {size} bytes; at most "
                                  f"{config.batch_max_bytes} are allowed."))
        return scan
    digest = blake2b(digest_size=16)
    seen: set[str] = set()
    first: tuple[str, bool] | None = None
    offset = 0
    with path.open("rb") as source:
        for number, raw in enumerate(source, start=1):  # numbers count blank lines too, as editors do
            start, offset = offset, offset + len(raw)
            digest.update(raw)
            if not raw.strip():
                continue
            scan.starts.append(start)
            scan.ends.append(offset)
            if scan.errors and len(scan.errors) >= MAX_ERRORS:
                continue
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                line = None
            problem = _check_line(line, number, endpoint)
            if problem is None:
                model, body = line["body"]["model"], line["body"]
                if model != TEST_MODEL and model not in config.models:
                    problem = _error("model_not_found", f"The provided model '{model}' is not supported by "
                                     "the Batch API.", number, "body.model")
                elif line["custom_id"] in seen:
                    problem = _error("duplicate_custom_id", f"The custom_id '{line['custom_id']}' is "
                                     "used by more than one line.", number, "custom_id")
                elif first is not None and model != first[0]:
                    problem = _error("mismatched_model", "All lines of a batch must use the same model; "
                                     f"line 1 uses '{first[0]}'.", number, "body.model")
                elif first is not None and _thinking_mode(config, model, body) != first[1]:
                    problem = _error("mismatched_thinking_mode", "All lines of a batch must use the same "
                                     "thinking mode.", number, "body.enable_thinking")
                seen.add(line["custom_id"])
                first = first or (model, _thinking_mode(config, model, body))
            if problem is not None:
                scan.errors.append(problem)
    scan.digest = digest.digest()
    limit = config.batch_test_max_lines if endpoint == TEST_ENDPOINT or (first and first[0] == TEST_MODEL) \
        else config.batch_max_lines
    if not scan.starts:
        scan.errors = [_error("empty_file", "The input file has no lines.")]
    elif len(scan) > limit:
        scan.errors = [_error("too_many_tasks", f"The input file has {len(scan)} lines; at most {limit} "
                              "are allowed.")]
    return scan


@dataclass(frozen=True)
class LineResult:
    """One answered line: where it goes ("output", "error", or "missing": neither file) and its record."""

    destination: str
    record: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        """Counted as failed in ``request_counts`` (an error-file line)."""
        return self.destination == "error"


class LineAnswerer:
    """Answers a batch's lines with the chat call's rules and composer."""

    def __init__(self, config: SimConfig, stats: Stats) -> None:
        self.config, self.stats = config, stats
        self.rules = Rules(config)
        self.composer = Composer(config)

    def answer(self, raw: bytes, endpoint: str, authorization: str | None) -> LineResult:
        line = orjson.loads(raw)
        custom_id, body = line["custom_id"], line["body"]
        config = self.config
        key = body_key(body)
        if body["model"] == TEST_MODEL or endpoint == TEST_ENDPOINT:
            return self._test_line(custom_id, body, endpoint, key)
        prompt_text = last_user_text(body.get("messages"))
        attempt = self.stats.attempt(key, prompt_text)
        draw = Draw(config.seed, key, attempt)
        rid, line_id = draw.request_id, f"batch_req_{token(config.seed, key, attempt, 'line', 24)}"
        try:
            model, text = self.rules.check(body, authorization)
            thinking, prompt = self.rules.content(model, body, text)
            fault = draw.fault(config)
            if fault in _LOST:
                self.stats.line(STATUS_NO_ANSWER, _LOST[fault])
                return LineResult("missing")
            error = fault_error(fault) if fault else None
            if error is not None:
                raise error
            answer, usage = self.composer.answer(body, seed=config.seed, key=key, attempt=attempt,
                                                 thinking=thinking, prompt=prompt, completion_id=rid)
        except ChatError as exc:
            self.stats.line(exc.status, exc.code)
            rate = config.batch_failed_in_output_rate
            in_output = unit(config.seed, key, attempt, "failed_in_output") < rate
            record = self.error_record(line_id, custom_id, exc, exc.request_id or rid)
            return LineResult("output" if in_output else "error", record)
        self.stats.line(200, None, billed=(key, usage, prompt_text))
        return LineResult("output", _output(line_id, custom_id, rid, answer))

    def _test_line(self, custom_id: str, body: dict[str, Any], endpoint: str, key: bytes) -> LineResult:
        """The free dry run: always the same answer, never billed; only on its own url."""
        rid, line_id = str(uuid.uuid4()), f"batch_req_{uuid.uuid4().hex}"
        if body["model"] != TEST_MODEL or endpoint != TEST_ENDPOINT:
            exc = ChatError(400, "mismatched_test_url", f"The model {TEST_MODEL} must be used with the url "
                            f"{TEST_ENDPOINT}, and that url only with that model.")
            self.stats.line(exc.status, exc.code)
            return LineResult("error", self.error_record(line_id, custom_id, exc, rid))
        prompt = prompt_tokens(body["messages"])
        usage = Usage(prompt, 5, 0)
        choice = {"index": 0, "message": {"role": "assistant", "content": TEST_ANSWER},
                  "finish_reason": "stop", "logprobs": None}
        self.stats.line(200, None)
        return LineResult("output", _output(line_id, custom_id, rid,
                                            completion_body(body, [choice], usage, thinking=False,
                                                            completion_id=rid)))

    def error_record(self, line_id: str, custom_id: str, exc: ChatError, request_id: str) -> dict[str, Any]:
        """A failed line, its error where ``batch_error_line_style`` puts it."""
        style = self.config.batch_error_line_style
        body = {"error": {"code": exc.code, "message": exc.message, "type": exc.type, "param": None},
                "request_id": request_id}
        response = {"status_code": exc.status, "request_id": request_id, "body": body}
        return {"id": line_id, "custom_id": custom_id,
                "response": None if style == "error" else response,
                "error": None if style == "response" else {"code": exc.code, "message": exc.message}}


def unfinished_record(raw: bytes, code: str, message: str) -> dict[str, Any]:
    """The error line of a line an expired or cancelled batch never ran."""
    return {"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": orjson.loads(raw)["custom_id"],
            "response": None, "error": {"code": code, "message": message}}


def _output(line_id: str, custom_id: str, request_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": line_id, "custom_id": custom_id,
            "response": {"status_code": 200, "request_id": request_id, "body": body}, "error": None}
