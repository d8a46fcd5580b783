"""Configuration of the local Batch Chat simulator: :class:`SimConfig` and :class:`ErrorRule`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MODELS: tuple[str, ...] = (
    "qwen3.5-plus", "qwen3.5-flash", "qwen3-max", "qwen-plus", "qwen-flash", "deepseek-v3.2",
    "qwen3-vl-plus", "qwen3-vl-flash",
)

#: model -> thinks by default? (True: thinks unless ``enable_thinking=false``; False: hybrid, thinks
#: only with ``enable_thinking=true``). Models absent from the mapping never think.
DEFAULT_THINKING_MODELS: Mapping[str, bool] = {
    "qwen3.5-plus": True, "qwen3.5-flash": True,
    "qwen-plus": False, "qwen-flash": False, "qwen3-max": False, "deepseek-v3.2": False,
}

LATENCY_DISTRIBUTIONS = ("fixed", "uniform", "exponential", "lognormal")

#: What becomes of the lines an expired or cancelled batch did not run: error lines or nothing.
BATCH_UNFINISHED = ("error", "missing")
#: Where a failed batch line carries its error: both fields, ``response`` only (OpenAI), ``error`` only.
BATCH_ERROR_LINE_STYLES = ("both", "response", "error")

#: The random per-attempt faults, in the order their probability bands are laid out on [0, 1).
FAULTS = ("throttle", "error_500", "error_503", "drop", "bad_body", "timeout")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class ErrorRule:
    """Answer every request whose messages contain ``match`` (every request if ``""``) with an error.

    Deterministic, not random: used to force run-fatal answers (``Arrearage``, ``AccessDenied``, ...).
    ``echo_authorization`` appends the request's Authorization header to the message, and
    ``echo_authorization_in_request_id`` sends it as the request id (the ``x-request-id`` header and the
    body's ``request_id``): a careless server echoing the key, for tests that it never leaks.
    """

    match: str
    status: int
    code: str
    message: str
    type: str = "invalid_request_error"
    echo_authorization: bool = False
    echo_authorization_in_request_id: bool = False

    def __post_init__(self) -> None:
        _check(isinstance(self.match, str), "ErrorRule.match must be a string")
        _check(_is_int(self.status) and 400 <= self.status <= 599,
               f"ErrorRule.status must be an HTTP error status 400-599, got {self.status!r}")
        _check(isinstance(self.code, str) and bool(self.code), "ErrorRule.code must be a non-empty string")
        _check(isinstance(self.message, str), "ErrorRule.message must be a string")
        _check(isinstance(self.type, str), "ErrorRule.type must be a string")
        for name in ("echo_authorization", "echo_authorization_in_request_id"):
            _check(isinstance(getattr(self, name), bool), f"ErrorRule.{name} must be a bool")


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    """Behaviour of the simulated Batch Chat endpoint. Change it by copy (``dataclasses.replace``).

    Latency is the simulated queue wait, drawn from ``latency`` with mean ``latency_s`` ("uniform" is
    uniform on [0, 2 * latency_s], "lognormal" has sigma 1; "fixed" with ``latency_jitter_s`` is uniform
    on ``latency_s`` +- that, e.g. 10 +- 1 for a 9-11 s wait), capped at ``latency_max_s``. Rates are
    per-attempt probabilities; the six fault rates together must not exceed 1. ``max_pending`` is per
    model, ``max_qps`` per account (both ``None`` = no cap). ``responder`` replaces the default
    answer text: ``(request body) -> str``.

    What a completion returns (``_outputs.py``): ``max_n`` caps ``n``; ``sample_flip_rate`` is the chance
    that a choice after the first picks another label; the markers, found in the messages, break JSON
    answers until repaired (``bad_json_marker``: unparseable; ``bad_schema_marker``: breaks its schema),
    break tool-call arguments (``bad_arguments_marker``) or answer in text despite ``tools``
    (``no_tool_marker``, with ``tool_choice`` "auto"). ``None`` turns a marker off.

    Batch File mode (``_batches.py``): a batch waits ``batch_validating_s`` in "validating", runs one line
    every ``batch_line_s`` (0: as fast as it can, yielding to the server between lines), waits
    ``batch_finalizing_s`` in "finalizing". Validation fails a file over ``batch_max_lines`` lines (over
    ``batch_test_max_lines`` with the free test model) or ``batch_max_bytes`` bytes.
    ``batch_hold_lines=K`` holds every batch in progress once it has run K lines, until released
    (``Simulator.release_batches()``); ``batch_expire_after_lines=K`` expires every batch once it has run
    K lines. The lines an expired or cancelled batch did not run become error lines
    (``batch_unfinished="error"``: codes ``batch_expired`` / ``batch_cancelled``) or are missing from both
    files ("missing"). ``batch_failed_in_output_rate``: the share of failed lines written to the output
    file (status_code != 200, counted as completed) instead of the error file;
    ``batch_error_line_style``: a failed line's error in ``response.body.error`` and ``error`` ("both"),
    only the first ("response") or only the second ("error", ``response`` null).
    ``on_batch_created_marker``: a file the server appends each new batch id to (one a line) right after
    creating it; ``stall_batch_creates=N``: the first N creates make their batch, then never answer (a
    client that dies there never learns the id).
    """

    seed: int = 0
    api_key: str | None = field(default=None, repr=False)
    models: tuple[str, ...] = DEFAULT_MODELS
    thinking_models: Mapping[str, bool] = field(
        default_factory=lambda: dict(DEFAULT_THINKING_MODELS), hash=False)
    latency: str = "fixed"
    latency_s: float = 0.0
    latency_max_s: float = 3600.0
    latency_jitter_s: float = 0.0  # "fixed" only: the wait is uniform on latency_s +- this
    server_timeout_s: float = 3600.0
    hang_rate: float = 0.0
    hang_s: float = 3600.0
    max_pending: int | None = 10_000
    max_qps: float | None = 1000
    burst_limit: int | None = None
    throttle_rate: float = 0.0
    error_500_rate: float = 0.0
    error_503_rate: float = 0.0
    drop_rate: float = 0.0
    bad_body_rate: float = 0.0
    timeout_rate: float = 0.0
    retry_after_s: float | None = None
    moderation_marker: str | None = "[[moderate]]"
    error_rules: tuple[ErrorRule, ...] = ()
    max_input_tokens: int | None = None
    responder: Callable[[dict[str, Any]], str] | None = None
    # what a completion returns beyond one text answer (see _outputs.py)
    max_n: int = 4
    sample_flip_rate: float = 0.25
    bad_json_marker: str | None = "[[badjson]]"
    bad_schema_marker: str | None = "[[badschema]]"
    bad_arguments_marker: str | None = "[[badargs]]"
    no_tool_marker: str | None = "[[notool]]"
    # Batch File mode (see _batches.py)
    batch_max_lines: int = 50_000
    batch_max_bytes: int = 500 * 1024 * 1024
    batch_test_max_lines: int = 100
    batch_validating_s: float = 0.0
    batch_line_s: float = 0.0
    batch_finalizing_s: float = 0.0
    batch_hold_lines: int | None = None
    batch_expire_after_lines: int | None = None
    batch_unfinished: str = "error"
    batch_failed_in_output_rate: float = 0.0
    batch_error_line_style: str = "both"
    on_batch_created_marker: str | None = None
    stall_batch_creates: int = 0

    def __post_init__(self) -> None:
        _check(_is_int(self.seed), f"seed must be an int, got {self.seed!r}")
        _check(self.api_key is None or (isinstance(self.api_key, str) and bool(self.api_key)),
               "api_key must be a non-empty string or None")
        self._normalise()
        _check(self.latency in LATENCY_DISTRIBUTIONS,
               f"latency must be one of {', '.join(LATENCY_DISTRIBUTIONS)}; got {self.latency!r}")
        for name in ("latency_s", "latency_max_s", "hang_s", "latency_jitter_s"):
            value = getattr(self, name)
            _check(_is_number(value) and value >= 0, f"{name} must be a finite number >= 0, got {value!r}")
        _check(self.latency_jitter_s <= self.latency_s,
               f"latency_jitter_s ({self.latency_jitter_s!r}) must not exceed latency_s ({self.latency_s!r})")
        _check(_is_number(self.server_timeout_s) and self.server_timeout_s > 0,
               f"server_timeout_s must be > 0, got {self.server_timeout_s!r}")
        for name in ("hang_rate", *(f"{fault}_rate" for fault in FAULTS)):
            value = getattr(self, name)
            _check(_is_number(value) and 0 <= value <= 1, f"{name} must be within [0, 1], got {value!r}")
        total = sum(self.fault_rates())
        _check(total <= 1 + 1e-9, f"the fault rates add up to {total:g}; their sum must not exceed 1")
        for name in ("max_pending", "burst_limit", "max_input_tokens"):
            value = getattr(self, name)
            _check(value is None or (_is_int(value) and value >= 1),
                   f"{name} must be an int >= 1 or None, got {value!r}")
        _check(self.max_qps is None or (_is_number(self.max_qps) and self.max_qps > 0),
               f"max_qps must be > 0 or None, got {self.max_qps!r}")
        _check(self.retry_after_s is None or (_is_number(self.retry_after_s) and self.retry_after_s >= 0),
               f"retry_after_s must be >= 0 or None, got {self.retry_after_s!r}")
        _check(self.moderation_marker is None
               or (isinstance(self.moderation_marker, str) and bool(self.moderation_marker)),
               "moderation_marker must be a non-empty string or None")
        _check(self.responder is None or callable(self.responder), "responder must be callable or None")
        self._check_outputs()
        self._check_batches()

    def _normalise(self) -> None:
        """Turn list-like fields into tuples / a plain dict, validating their items."""
        models = (self.models,) if isinstance(self.models, str) else tuple(self.models)
        _check(bool(models) and all(isinstance(m, str) and m for m in models),
               "models must be a non-empty sequence of model names")
        object.__setattr__(self, "models", models)
        _check(isinstance(self.thinking_models, Mapping), "thinking_models must be a mapping model -> bool")
        thinking = dict(self.thinking_models)
        _check(all(isinstance(m, str) and isinstance(v, bool) for m, v in thinking.items()),
               "thinking_models must map model names to bool (True: thinks by default)")
        object.__setattr__(self, "thinking_models", thinking)
        rules = tuple(self.error_rules)
        _check(all(isinstance(rule, ErrorRule) for rule in rules), "error_rules must hold ErrorRule objects")
        object.__setattr__(self, "error_rules", rules)

    def _check_outputs(self) -> None:
        _check(_is_int(self.max_n) and self.max_n >= 1, f"max_n must be an int >= 1, got {self.max_n!r}")
        _check(_is_number(self.sample_flip_rate) and 0 <= self.sample_flip_rate <= 1,
               f"sample_flip_rate must be within [0, 1], got {self.sample_flip_rate!r}")
        for name in ("bad_json_marker", "bad_schema_marker", "bad_arguments_marker", "no_tool_marker"):
            value = getattr(self, name)
            _check(value is None or (isinstance(value, str) and bool(value)),
                   f"{name} must be a non-empty string or None")

    def _check_batches(self) -> None:
        for name in ("batch_max_lines", "batch_max_bytes", "batch_test_max_lines"):
            value = getattr(self, name)
            _check(_is_int(value) and value >= 1, f"{name} must be an int >= 1, got {value!r}")
        for name in ("batch_validating_s", "batch_line_s", "batch_finalizing_s"):
            value = getattr(self, name)
            _check(_is_number(value) and value >= 0, f"{name} must be a finite number >= 0, got {value!r}")
        for name in ("batch_hold_lines", "batch_expire_after_lines"):
            value = getattr(self, name)
            _check(value is None or (_is_int(value) and value >= 0),
                   f"{name} must be an int >= 0 or None, got {value!r}")
        _check(self.batch_unfinished in BATCH_UNFINISHED,
               f"batch_unfinished must be one of {', '.join(BATCH_UNFINISHED)}; got {self.batch_unfinished!r}")
        _check(self.batch_error_line_style in BATCH_ERROR_LINE_STYLES,
               f"batch_error_line_style must be one of {', '.join(BATCH_ERROR_LINE_STYLES)}; "
               f"got {self.batch_error_line_style!r}")
        _check(_is_number(self.batch_failed_in_output_rate) and 0 <= self.batch_failed_in_output_rate <= 1,
               f"batch_failed_in_output_rate must be within [0, 1], got {self.batch_failed_in_output_rate!r}")
        _check(self.on_batch_created_marker is None
               or (isinstance(self.on_batch_created_marker, str) and bool(self.on_batch_created_marker)),
               "on_batch_created_marker must be a non-empty path string or None")
        _check(_is_int(self.stall_batch_creates) and self.stall_batch_creates >= 0,
               f"stall_batch_creates must be an int >= 0, got {self.stall_batch_creates!r}")

    def fault_rates(self) -> tuple[float, ...]:
        """The per-attempt probability of each fault in :data:`FAULTS`, in that order."""
        return tuple(getattr(self, f"{fault}_rate") for fault in FAULTS)
