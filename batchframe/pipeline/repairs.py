"""``max_repairs=N``: a JSON answer that does not parse or validate is asked again, up to N times.

A repair is a follow-up turn: the request's messages, the broken answer as the assistant's turn, and a
user turn naming the error. It is a request of its own (its own hash, sent and retried by the engine,
admitted by the budget like any call); when it comes back it answers the original request: tokens and
cost add up over the chain, ``repairs`` counts the turns, ``attempts`` stays the transport's. Every
step is written to the checkpoint as it lands, so a run killed mid-repair loses no paid answer: the
stored answer still fails to parse, and the next run (``max_repairs`` is not in the request hash)
repairs it from there. An answer cut off at ``max_tokens`` (finish_reason "length") is not repaired:
asking again with the same budget would cut it off again; its ``parse_error`` says so.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

from ..records import OK, Result
from ..rows.structured import Structured, parse_answer

REPAIR_TURN = ("Your answer above could not be used: {error}. Reply again with only the corrected JSON, "
               "nothing else.")


@dataclasses.dataclass
class _Chain:
    rid: str            # the original request's hash: what the rows and the checkpoint know
    messages: list      # the conversation so far, the follow-up turn included
    so_far: Result      # the last answer, with the chain's totals
    cost: float | None  # spent on the chain so far


class Repairs:
    def __init__(self, structured: Structured, max_repairs: int, hasher: Any) -> None:
        self.structured, self.max, self._hash = structured, max_repairs, hasher
        self._chains: dict[str, _Chain] = {}   # follow-up rid -> its chain
        self.sent = 0                          # follow-up turns asked for
        self.fixed = 0                         # rows' answers that parse after a repair

    def broken(self, res: Result) -> str | None:
        """Why an answer must be repaired (its parse error), or None (fine, failed, cut off, or out
        of repairs)."""
        if res.status != OK or res.finish_reason == "length" or res.repairs >= self.max:
            return None
        if res.tool_calls is not None and not (res.response or "").strip():
            return None
        _, error = parse_answer(res.response, self.structured)
        return error

    def turn(self, res: Result, messages: list, error: str) -> tuple[str, list]:
        """The follow-up request for a broken answer: (its rid, its messages); nothing remembered."""
        turn = [*messages, {"role": "assistant", "content": res.response or ""},
                {"role": "user", "content": REPAIR_TURN.format(error=error)}]
        return self._hash(turn), turn

    def follow_up(self, res: Result, messages: list, error: str, cost: float | None) -> tuple[str, list]:
        """The follow-up request for a broken answer: (its rid, its messages), its chain remembered."""
        rid, turn = self.turn(res, messages, error)
        self._chains[rid] = _Chain(res.rid, turn, res, cost)
        self.sent += 1
        return rid, turn

    def answers(self, rid: str) -> bool:
        return rid in self._chains

    def merge(self, res: Result, cost: float | None) -> tuple[Result, float | None, list]:
        """A follow-up's answer as the answer to the original request: (the result with the chain's
        totals, the chain's cost, the conversation so far)."""
        chain = self._chains.pop(res.rid)
        merged, spent = self.join(chain.so_far, res, chain.cost, cost)
        return merged, spent, chain.messages

    def join(self, before: Result, res: Result, before_cost: float | None,
             cost: float | None) -> tuple[Result, float | None]:
        """``res`` (a follow-up's answer) after ``before`` (the answer it repairs, with the chain's
        totals so far): the answer to the original request with the chain's totals, and its cost. A
        follow-up that failed for good leaves the last good answer (one more repair counted)."""
        total = {f: _add(getattr(before, f), getattr(res, f))
                 for f in ("prompt_tokens", "completion_tokens", "total_tokens", "reasoning_tokens")}
        merged = dataclasses.replace(res, rid=before.rid, repairs=before.repairs + 1,
                                     latency_s=_add(before.latency_s, res.latency_s), **total)
        spent = None if before_cost is None or cost is None else before_cost + cost
        if merged.status == OK and self.structured is not None \
                and parse_answer(merged.response, self.structured)[1] is None:
            self.fixed += 1
        if merged.status != OK:  # the follow-up failed for good: the last good answer stands
            merged = dataclasses.replace(before, repairs=before.repairs + 1, **total)
        return merged, spent

    def stored_broken(self, reused: Any, prepared: Any) -> Iterator[tuple[list[int], Result, str, float | None]]:
        """The stored answers of a batch (``checkpoint.reuse.Reused``) that still do not parse, with
        repairs left: per request, (the rows' positions, the stored answer, its error, its cost)."""
        import pandas as pd

        stored = reused.stored
        groups: dict[str, list[int]] = {}
        for pos in reused.use.nonzero()[0].tolist():
            rid = prepared.rids[pos]
            if rid is not None and stored["status"].iat[pos] == OK:
                groups.setdefault(rid, []).append(pos)
        for rid, positions in groups.items():
            res = stored_result(stored.iloc[positions[0]], rid)
            error = self.broken(res)
            if error is not None:
                cost = stored["cost"].iat[positions[0]]
                yield positions, res, error, None if pd.isna(cost) else float(cost)


def _add(a: Any, b: Any) -> Any:
    return None if a is None and b is None else (a or 0) + (b or 0)


def stored_result(row: Any, rid: str) -> Result:
    """A stored answer (a row of the reused columns) as the Result a repair starts from."""
    import pandas as pd

    def value(name: str) -> Any:
        v = row[name]
        return None if v is None or (not isinstance(v, (list, tuple)) and pd.isna(v)) else v

    fields = {f: value(f) for f in ("response", "finish_reason", "prompt_tokens", "completion_tokens",
                                     "total_tokens", "reasoning_tokens", "reasoning_content", "request_id",
                                     "latency_s")}
    for f in ("prompt_tokens", "completion_tokens", "total_tokens", "reasoning_tokens"):
        if fields[f] is not None:
            fields[f] = int(fields[f])
    return Result(rid=rid, status=OK, attempts=int(value("attempts") or 0), repairs=int(value("repairs") or 0),
                  **fields)
