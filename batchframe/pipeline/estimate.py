"""``batchframe.estimate``: what a ``complete()`` call would send and cost, before spending anything.

The same rows stage and the same reuse decision as a run, over the same source batches (a frame is
one batch; the CLI streams a file of any size): per batch the rows a run would send for the first time
(not answered by the checkpoint, not counted in an earlier batch: 8 bytes remembered per distinct
request) have their input tokens counted offline (``tokens``). Output tokens are assumed
(``output_tokens=`` per request, capped at ``max_tokens``) or measured: ``sample=N`` sends N rows for
real (through ``complete()``, same arguments, so into the checkpoint when one is given) and uses their
mean completion tokens.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

import pandas as pd

from ..checkpoint.hashes import SeenHashes, hashes
from ..exceptions import ConfigError
from ..records import OK
from ..rows.prepare import prepare
from .options import RunOptions, resolve_offline
from .pricing import CURRENCY
from .tokens import APPROXIMATE, DEFAULT_IMAGE_TOKENS, prompt_tokens, token_counter

DEFAULT_OUTPUT_TOKENS = 100


@dataclasses.dataclass(frozen=True, kw_only=True)
class Estimate:
    """What a run would send and cost. ``as_dict()`` gives the fields as a plain dict."""

    model: str
    rows: int                    # rows in the input
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


def estimate_frame(df: pd.DataFrame, prompt_col: str | None = None, *,
                   output_tokens: int = DEFAULT_OUTPUT_TOKENS, sample: int = 0,
                   image_tokens: int = DEFAULT_IMAGE_TOKENS, **options: Any) -> Estimate:
    """Count what ``complete()`` with the same arguments would send, and project its cost.

    Takes every argument ``complete()`` takes (execution settings such as ``max_workers`` are accepted
    and ignored) plus ``output_tokens`` (assumed completion tokens per request, default 100, capped at
    ``max_tokens``), ``sample`` (send this many rows for real and use their mean completion tokens
    instead: they are billed) and ``image_tokens`` (assumed tokens per image). Nothing is sent
    unless ``sample`` > 0; no key is needed. With ``checkpoint=``, rows it already answered are
    counted as done and left out of the projection.
    """
    from ..io.frames import FrameSource

    source = FrameSource(df)
    opts = resolve_offline(prompt_col, **options)
    _check_counts(output_tokens, sample, image_tokens)
    sampled = _sample(df, prompt_col, sample, options, image_tokens) if sample else None
    return estimate_source(opts, source, output_tokens=output_tokens, image_tokens=image_tokens,
                           sampled=sampled)


def _check_counts(output_tokens: Any, sample: Any, image_tokens: Any) -> None:
    for name, value in (("output_tokens", output_tokens), ("image_tokens", image_tokens)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
            raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
    if not isinstance(sample, int) or isinstance(sample, bool) or sample < 0:
        raise ConfigError(f"sample must be a whole number >= 0, got {sample!r}")


def estimate_source(opts: RunOptions, source: Any, *, output_tokens: float = DEFAULT_OUTPUT_TOKENS,
                    image_tokens: int = DEFAULT_IMAGE_TOKENS, sampled: Mapping | None = None) -> Estimate:
    """The estimate of a run of ``opts`` over ``source`` (any source a run takes)."""
    reuse = None
    path = opts.checkpoint
    if path is not None and os.path.isdir(path) and os.listdir(path):
        from ..checkpoint.reuse import Reuse

        reuse = Reuse(path, opts.retry_failed, whole=source.batch_rows >= source.rows)
    notes = list(opts.notes)
    per_request, out_source = _output_per_request(output_tokens, opts.spec.params, sampled, notes)
    prices = opts.prices
    count, tokenizer = token_counter(opts.spec.model)
    cache: dict = {}
    unique, to_send = SeenHashes(), SeenHashes()
    empty = done = sent = tokens = 0
    cost = 0.0
    for rows in source.batches():
        p = prepare(rows.frame, rows.keys, opts.rows, opts.spec, dedupe=opts.dedupe)
        reused = reuse.lookup(rows.keys, p.rids) if reuse is not None else None
        empty += len(p.errors)
        done += reused.count if reused is not None else 0
        with_rid = [pos for pos, r in enumerate(p.rids) if r is not None]
        unique.first_seen(hashes([p.rids[i] for i in with_rid]))
        send = [pos for pos in with_rid if reused is None or not reused.use[pos]]
        for pos, new in zip(send, to_send.first_seen(hashes([p.rids[i] for i in send]))):
            if new:
                n = prompt_tokens(p.messages[pos], count, image_tokens=image_tokens, cache=cache)
                tokens += n
                sent += 1
                if prices is not None:
                    cost += prices.cost(n, round(per_request)) or 0.0
    if prices is None and not opts.prices_given:
        notes.append(f"no price known for {opts.spec.model!r} at this endpoint: pass prices={{'input': .., 'output': ..}}")
    if tokenizer == APPROXIMATE:
        notes.append("input tokens are approximate: " + (
            "install the tokenizer with pip install 'batchframe[estimate]'"
            if opts.spec.model.lower().startswith("qwen") else f"no offline tokenizer for {opts.spec.model!r}"))
    if sampled and opts.checkpoint is None:
        notes.append(f"the {sampled['rows']} sampled rows were sent for real and will be sent again by "
                     "the full run: pass checkpoint= to keep their answers")
    if opts.rows.image_col is not None:
        notes.append(f"images counted as {image_tokens} tokens each (an assumption; pass image_tokens=)")
    fmt = opts.spec.params.get("response_format")
    if "tools" in opts.spec.params or (isinstance(fmt, Mapping) and fmt.get("type") == "json_schema"):
        notes.append("tool definitions / the JSON schema are not counted as input")
    return Estimate(
        model=opts.spec.model, rows=source.rows, unique_requests=len(unique), empty_rows=empty,
        done_rows=done, requests_to_send=sent, input_tokens=tokens, output_tokens_per_request=per_request,
        output_tokens=round(per_request * sent), output_source=out_source,
        cost=cost if prices is not None else None, currency=CURRENCY if prices is not None else None,
        price_source=prices.source if prices is not None else None, tokenizer=tokenizer,
        sample=sampled, notes=tuple(dict.fromkeys(notes)))


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


def _sample(df: pd.DataFrame, prompt_col: str | None, n: int, options: Mapping, image_tokens: int) -> dict:
    """Send ``n`` rows for real with the same arguments; their token counts and cost."""
    from ..rows.messages import row_messages
    from .frame import run_frame
    from .options import resolve

    picked = df.sample(n=min(n, len(df)), random_state=0) if len(df) else df
    out = run_frame(picked, resolve(prompt_col, **options))
    prefix, suffix = options.get("prefix", ""), options.get("suffix", "")
    name = {c: f"{prefix}{c}{suffix}" for c in ("status", "completion_tokens", "prompt_tokens")}
    ok = out[out[name["status"]] == OK]
    completion = ok[name["completion_tokens"]].dropna()
    count, _ = token_counter(options["model"]) if "model" in options else (None, None)
    rows = {k: options.get(k) for k in ("template", "messages_col", "system", "image_col")}
    messages, _ = row_messages(ok, prompt_col=prompt_col, **rows)
    counted = (sum(prompt_tokens(m, count, image_tokens=image_tokens) for m in messages if m is not None)
               if count is not None else None)
    summary = out.attrs.get("batchframe", {})
    return {
        "rows": len(picked), "ok": len(ok),
        "mean_completion_tokens": float(completion.mean()) if len(completion) else None,
        "prompt_tokens_counted": counted,
        "prompt_tokens_reported": int(ok[name["prompt_tokens"]].fillna(0).sum()),
        "cost": summary.get("cost"),
    }
