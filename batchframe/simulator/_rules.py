"""The rules that decide whether a chat request body gets an answer, shared by chat calls and batch lines.

Each check raises :class:`ChatError` (status, code, message, type) when the request would be refused:
unknown model, a malformed body, a matching :class:`ErrorRule`, thinking or content rules, and the
random faults that answer with an error. The caller turns the error into an HTTP answer (a chat call)
or an error line (Batch File).
"""

from __future__ import annotations

from typing import Any

from ._completion import prompt_tokens
from ._config import SimConfig
from ._outputs import check_output_params
from ._responder import json_mode, message_text

RATE_MESSAGE = "Requests rate limit exceeded, please try again later."

#: fault name -> the error it answers with (the other faults close the connection or corrupt the body)
_FAULT_ERRORS = {
    "throttle": (429, "Throttling.RateQuota", RATE_MESSAGE, "requests"),
    "error_503": (503, "ModelServingError", "Model serving is busy", "model_serving_error"),
    "error_500": (500, "InternalError", "An internal error has occurred, please try again later.",
                  "internal_error"),
}


class ChatError(Exception):
    """A refused request: the HTTP status and the provider's error fields.

    ``request_id`` replaces the attempt's own request id when set (an :class:`ErrorRule` echoing the
    Authorization header into it).
    """

    def __init__(self, status: int, code: str, message: str, type_: str = "invalid_request_error", *,
                 request_id: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.type = status, code, message, type_
        self.request_id = request_id


def invalid(message: str) -> ChatError:
    return ChatError(400, "InvalidParameter", message)


def fault_error(fault: str) -> ChatError | None:
    """The error a random fault answers with, or None for the faults that are not an error answer."""
    spec = _FAULT_ERRORS.get(fault)
    return ChatError(*spec) if spec is not None else None


class Rules:
    """The checks of one :class:`SimConfig`, in the order a chat call applies them."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config

    def check_model(self, body: dict[str, Any]) -> str:
        model = body.get("model")
        if not isinstance(model, str) or model not in self.config.models:
            raise ChatError(404, "model_not_found",
                            f"The model `{model}` does not exist or you do not have access to it.")
        return model

    def validate(self, body: dict[str, Any]) -> str:
        """Check the request's shape; return the text of all its messages."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise invalid("The parameter `messages` must be a non-empty list of message objects.")
        for name in ("max_tokens", "max_completion_tokens"):
            value = body.get(name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise invalid(f"The parameter `{name}` must be a positive integer.")
        problem = check_output_params(body, self.config)
        if problem is not None:
            raise invalid(problem)
        return "\n".join(message_text(m.get("content")) for m in messages)

    def apply_error_rules(self, text: str, authorization: str | None) -> None:
        """Raise the first :class:`ErrorRule` whose ``match`` is in ``text``."""
        for rule in self.config.error_rules:
            if rule.match in text:
                message, request_id = rule.message, None
                if rule.echo_authorization:
                    message = f"{message} (Authorization: {authorization or ''})"
                if rule.echo_authorization_in_request_id and authorization:
                    request_id = authorization
                raise ChatError(rule.status, rule.code, message, rule.type, request_id=request_id)

    def check(self, body: dict[str, Any], authorization: str | None) -> tuple[str, str]:
        """Model, shape and error rules: returns (model, text of the messages)."""
        model = self.check_model(body)
        text = self.validate(body)
        self.apply_error_rules(text, authorization)
        return model, text

    def thinking(self, model: str, body: dict[str, Any]) -> bool:
        """Whether this request thinks: the model's default, overridden by ``enable_thinking``."""
        default = self.config.thinking_models.get(model)
        enable = body.get("enable_thinking")
        if enable is not None and not isinstance(enable, bool):
            raise invalid("The parameter `enable_thinking` must be a boolean.")
        if default is None:
            return False
        return default if enable is None else enable

    def check_content(self, body: dict[str, Any], text: str, thinking: bool) -> int:
        """Reject what the model would refuse (too long, JSON mode while thinking, moderation).

        Returns the prompt token count.
        """
        config = self.config
        prompt = prompt_tokens(body["messages"])
        if config.max_input_tokens is not None and prompt > config.max_input_tokens:
            raise invalid(f"Range of input length should be [1, {config.max_input_tokens}]")
        mode = json_mode(body)
        if thinking and mode is not None:
            raise invalid(f"The parameter `response_format` ({mode}) is not supported when enable_thinking "
                          "is true.")
        if config.moderation_marker is not None and config.moderation_marker in text:
            raise ChatError(400, "data_inspection_failed", "Input data may contain inappropriate content.",
                            "data_inspection_failed")
        return prompt

    def content(self, model: str, body: dict[str, Any], text: str) -> tuple[bool, int]:
        """Thinking and content rules: returns (thinking?, prompt tokens)."""
        thinking = self.thinking(model, body)
        return thinking, self.check_content(body, text, thinking)
