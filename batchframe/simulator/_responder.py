"""The simulator's default answers: a tiny, deterministic sentiment annotator (no real model).

The answer is "positive" / "negative" / "neutral" from a small lexicon over the last user message:
one word when the prompt asks for one word, a short sentence otherwise, a JSON object when the
request asks for JSON mode (filling the property names of a ``json_schema`` when one is given).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_POSITIVE = frozenset("""good great excellent love loved loves amazing wonderful fantastic best happy
perfect recommend recommended nice awesome delicious friendly fast helpful beautiful enjoy enjoyed
pleased glad superb brilliant comfortable easy reliable worth""".split())
_NEGATIVE = frozenset("""bad terrible awful hate hated worst poor broken slow disappointed disappointing
refund horrible rude waste useless dirty late cold noisy expensive boring problem problems
unhappy angry fail failed faulty""".split())
_CJK_POSITIVE = ("好", "喜欢", "满意", "棒", "推荐", "不错")
_CJK_NEGATIVE = ("差", "失望", "糟糕", "退货", "慢", "难吃")
_NEGATIONS = frozenset("not no never hardly isn't wasn't don't didn't doesn't aren't can't won't".split())
_WORD = re.compile(r"[a-z']+")
_ONE_WORD = re.compile(
    r"\b(?:one|single|1)[- ]word\b|\b(?:only|just) (?:the|one|a) (?:label|word)\b|一个词", re.IGNORECASE)
_TEXT_HINTS = ("reason", "explanation", "rationale", "summary", "comment")
_LABEL_HINTS = ("sentiment", "label", "class", "category", "polarity", "tone", "emotion")
_RATING = {"positive": 5, "neutral": 3, "negative": 1}


def message_text(content: Any) -> str:
    """The text of a message ``content``: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part["text"] for part in content
                         if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def last_user_text(messages: Any) -> str:
    """The text of the last user message ("" if none)."""
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return message_text(message.get("content"))
    return ""


def sentiment(text: str) -> tuple[str, float, list[str]]:
    """(label, confidence, cue words) for ``text``; negation just before a cue flips it."""
    words = _WORD.findall(text.lower())
    score, cues = 0, []
    for i, word in enumerate(words):
        polarity = (word in _POSITIVE) - (word in _NEGATIVE)
        if not polarity:
            continue
        if any(w in _NEGATIONS or w.endswith("n't") for w in words[max(0, i - 2):i]):
            polarity, word = -polarity, f"not {word}"
        score += polarity
        cues.append(word)
    for marker in _CJK_POSITIVE + _CJK_NEGATIVE:
        if marker in text:
            score += 1 if marker in _CJK_POSITIVE else -1
            cues.append(marker)
    label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
    confidence = round(min(0.97, 0.62 + 0.1 * abs(score)), 2) if score else 0.55
    return label, confidence, cues


def _json_type(spec: dict[str, Any]) -> str:
    kind = spec.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    return kind if isinstance(kind, str) else "string"


def _fill(name: str, spec: Any, label: str, confidence: float, cues: list[str]) -> Any:
    """A plausible value of the JSON-schema property ``name``."""
    if not isinstance(spec, dict):
        return label
    enum = spec.get("enum")
    if isinstance(enum, list) and enum:
        return next((v for v in enum if isinstance(v, str) and v.lower() == label), enum[0])
    kind, lowered = _json_type(spec), name.lower()
    if kind == "number":
        return confidence
    if kind == "integer":
        return _RATING[label] if any(h in lowered for h in ("score", "rating", "star")) else len(cues)
    if kind == "boolean":
        return label == "positive"
    if kind == "array":
        return cues
    if kind == "object":
        return _fill_object(spec, label, confidence, cues)
    if kind == "null":
        return None
    if any(h in lowered for h in _TEXT_HINTS):
        return _sentence(label, cues)
    return label if any(h in lowered for h in _LABEL_HINTS) else f"simulated {name}"


def _fill_object(schema: dict[str, Any], label: str, confidence: float, cues: list[str]) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return {"sentiment": label, "confidence": confidence}
    return {name: _fill(name, spec, label, confidence, cues) for name, spec in properties.items()}


def _sentence(label: str, cues: list[str]) -> str:
    found = f"it mentions {', '.join(repr(c) for c in cues[:4])}" if cues else "no clear opinion words"
    return f"The sentiment is {label}: {found}. [simulated answer]"


def json_mode(body: dict[str, Any]) -> str | None:
    """"json_object" / "json_schema" when the request asks for JSON output, else None."""
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    return str(kind) if kind in ("json_object", "json_schema") else None


LABELS = ("positive", "negative", "neutral")


def default_responder(body: dict[str, Any], label: str | None = None) -> str:
    """The simulator's default answer text for a chat request body.

    ``label`` replaces the label the lexicon finds (another sample of ``n`` choices disagreeing).
    """
    messages = body.get("messages")
    found, confidence, cues = sentiment(last_user_text(messages))
    label = label or found
    mode = json_mode(body)
    if mode is not None:
        schema = body["response_format"].get("json_schema") if mode == "json_schema" else None
        schema = schema.get("schema") if isinstance(schema, dict) else None
        value = _fill_object(schema if isinstance(schema, dict) else {}, label, confidence, cues)
        return orjson.dumps(value).decode()
    instructions = " ".join(message_text(m.get("content")) for m in messages if isinstance(m, dict)
                            and m.get("role") in ("system", "user")) if isinstance(messages, list) else ""
    return label if _ONE_WORD.search(instructions) else _sentence(label, cues)


def fill_arguments(parameters: Any, text: str, label: str | None = None) -> dict[str, Any]:
    """Tool-call arguments for the JSON schema ``parameters``, filled from the sentiment of ``text``
    (``label`` replacing the label found)."""
    found, confidence, cues = sentiment(text)
    label = label or found
    return _fill_object(parameters if isinstance(parameters, dict) else {}, label, confidence, cues)


def break_schema(answer: str) -> str:
    """Valid JSON that breaks its schema: the first property's value wrapped in a list (an object for
    a list), or the whole answer wrapped in a list when it is not an object with properties."""
    value = orjson.loads(answer)
    if not isinstance(value, dict) or not value:
        return orjson.dumps([value]).decode()
    name = next(iter(value))
    first = value[name]
    return orjson.dumps({**value, name: {"value": first} if isinstance(first, list) else [first]}).decode()


def reasoning_text(body: dict[str, Any], answer: str) -> str:
    """Deterministic 'thinking' for ``answer``: a few sentences, a few times longer than the answer."""
    label, _, cues = sentiment(last_user_text(body.get("messages")))
    sentences = [
        "The user wants the sentiment of the text in the last message.",
        f"Opinion words I notice: {', '.join(cues) if cues else 'none that stand out'}.",
        f"Weighing them, the overall tone is {label}.",
        "The answer must be valid JSON." if json_mode(body) else
        "The prompt asks for a single word." if " " not in answer else "A short sentence will do.",
        "(Simulated reasoning: no real model was called.)",
    ]
    text = " ".join(sentences)
    while len(text) < 3 * len(answer):
        text += " Let me double-check that the answer matches the requested format."
    return text
