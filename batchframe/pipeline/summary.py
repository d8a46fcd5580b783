"""The run summary: rows ok/failed/pending by error code, tokens, cost, retries, wall time.

Stored as a plain dict in ``out.attrs["batchframe"]`` and printed readably at the end of a run.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from ..records import OK, PENDING, Result


@dataclasses.dataclass
class Summary:
    rows: int
    unique_requests: int
    reused: int = 0            # rows answered by the checkpoint, nothing sent
    empty: int = 0             # rows with no prompt: no request
    ok: int = 0
    failed: int = 0
    pending: int = 0
    sent: int = 0              # HTTP attempts
    retries: int = 0
    throttled: int = 0
    prompt_tokens: int = 0     # billed by this run (successes), counted once per unique request
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = 0.0          # spent by this run
    total_cost: float | None = None  # every row's cost, including rows from the checkpoint
    currency: str | None = None
    length_empty: int = 0      # finish_reason "length" with empty content: the silent-wrong-answer trap
    empty_answers: int = 0     # other answers with no content (e.g. content null with "stop")
    bad_usage: int = 0         # answers whose token counts were malformed (kept, counted as unknown)
    parse_errors: int = 0      # JSON answers that did not parse (set by the sink that parses)
    repairs: int = 0           # follow-up turns asking again for a broken JSON answer (max_repairs)
    repaired: int = 0          # answers that parsed after a repair
    errors: Counter = dataclasses.field(default_factory=Counter)
    stop_reason: str | None = None
    wall_s: float = 0.0

    def add(self, res: Result, rows: int, cost: float | None) -> None:
        if res.status == OK:
            self.prompt_tokens += res.prompt_tokens or 0
            self.completion_tokens += res.completion_tokens or 0
            self.reasoning_tokens += res.reasoning_tokens or 0
            self.cost += cost or 0.0
            if not (res.response or "").strip() and res.tool_calls is None:  # a tool call is an answer
                if res.finish_reason == "length":
                    self.length_empty += rows
                else:
                    self.empty_answers += rows
            if getattr(res, "bad_usage", ()):
                self.bad_usage += 1

    def finish_engine(self, stats: Any, signal_name: str | None) -> None:
        self.sent, self.retries, self.throttled = stats.sent, stats.retries, stats.throttled
        self.stop_reason = "interrupted" if signal_name else stats.stop_reason

    def finish(self, status: Any, cost: Any, error_codes: Any, wall_s: float) -> None:
        counts = status.value_counts()
        self.ok = int(counts.get(OK, 0))
        self.pending = int(counts.get(PENDING, 0))
        self.failed = self.rows - self.ok - self.pending
        self.total_cost = float(cost.sum()) if self.currency else None
        self.wall_s = wall_s
        self.errors = Counter({str(k): int(v) for k, v in error_codes.dropna().value_counts().items()})

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["errors"] = dict(self.errors)
        for name in ("cost", "total_cost"):  # sums of floats: no 0.005756799999999999
            if d[name] is not None:
                d[name] = round(d[name], 10)
        d["wall_s"] = round(d["wall_s"], 3)
        return d

    def render(self) -> str:
        lines = [f"batchframe: {self.rows} rows, {self.unique_requests} unique requests: "
                 f"{self.ok} ok, {self.failed} failed, {self.pending} pending "
                 f"({self.reused} from checkpoint) in {self.wall_s:.1f} s"]
        if self.errors:
            lines.append("  failed by code: " + ", ".join(f"{k}={v}" for k, v in self.errors.most_common()))
        tok = f"  tokens: {self.prompt_tokens} in, {self.completion_tokens} out"
        if self.reasoning_tokens:
            tok += f" (of which {self.reasoning_tokens} thinking)"
        lines.append(tok + f"; {self.sent} calls sent, {self.retries} retries, {self.throttled} throttled")
        if self.currency:
            lines.append(f"  cost: {self.cost:.4f} {self.currency} this run"
                         + (f", {self.total_cost:.4f} {self.currency} all rows" if self.reused else ""))
        if self.length_empty:
            lines.append(f"  WARNING: {self.length_empty} rows stopped at max_tokens with an empty answer "
                         "(finish_reason='length'): raise max_tokens or turn thinking off")
        if self.empty_answers:
            lines.append(f"  WARNING: {self.empty_answers} rows got an empty answer (no content, status ok): "
                         "look at finish_reason; they are stored as answered and not re-sent")
        if self.bad_usage:
            lines.append(f"  WARNING: {self.bad_usage} answers had malformed token counts in their usage: "
                         "the answers are kept, those counts (and their cost) are unknown")
        if self.repairs:
            lines.append(f"  repairs: {self.repairs} follow-up turns sent, {self.repaired} answers fixed")
        if self.parse_errors:
            lines.append(f"  {self.parse_errors} answers could not be parsed: see the parse_error column")
        if self.stop_reason and self.stop_reason != "fatal":
            lines.append(f"  stopped early: {self.stop_reason}")
        return "\n".join(lines)


@dataclasses.dataclass
class Outcome:
    """How a run ended: its summary, why it stopped, the error that stopped it."""
    summary: Summary
    stop: str | None = None           # None, "budget", "deadline", "interrupted", "fatal"
    error: Any = None                 # the RunFatalError that stopped the run
    complete: bool = False            # every row of the source reached the sink
