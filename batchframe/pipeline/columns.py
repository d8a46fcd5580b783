"""Results back into columns: every row of a batch gets its typed result columns.

A row's values come from, in order: this run's ``Result`` for its request, its stored result (reused
from the checkpoint), its own error (a row that sent nothing: empty prompt, unusable image, invalid
text), or nothing yet (``pending``). Every result column is present in every result, with the same
pandas nullable dtypes whatever the data, so the schema never depends on the rows.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..records import FAILED, PENDING, RESULT_COLUMNS, Result
from ..rows.images import error_code
from ..rows.messages import EMPTY_PROMPT
from .options import SIMULATED

_FIELDS = [f for f in RESULT_COLUMNS if f not in ("status", "cost")]


def result_columns(index: pd.Index, per_row: Sequence[Result | None], row_errors: Mapping[int, Any],
                   costs: Sequence[float | None], names: Mapping[str, str], *, stored: pd.DataFrame | None = None,
                   reused: np.ndarray | None = None, simulated: bool = False, outputs: Sequence[str] = (),
                   n: int = 1, summary: Sequence[str] = ()) -> pd.DataFrame:
    """Typed result columns for every row (``stored``/``reused``: the checkpoint's answers, aligned),
    then the ``outputs`` asked for (``responses``, ``logprobs``, ``tool_calls``, ``repairs``) and the
    log-probability ``summary`` columns."""
    n_rows = len(per_row)
    todo = list(range(n_rows)) if reused is None else np.flatnonzero(~reused).tolist()
    m = len(todo)
    cols: dict[str, list] = {name: [None] * m for name in RESULT_COLUMNS}
    status, cost = cols["status"], cols["cost"]
    for i, pos in enumerate(todo):
        res = per_row[pos]
        if res is not None:
            for f in _FIELDS:
                cols[f][i] = getattr(res, f)
            status[i] = res.status
        elif pos in row_errors:
            cols["error"][i] = str(row_errors[pos])
            cols["error_code"][i] = error_code(row_errors[pos], EMPTY_PROMPT)
            cols["attempts"][i] = 0
            status[i] = FAILED
        else:
            status[i] = PENDING
        cost[i] = costs[pos]
    data = {}
    for f, dtype in RESULT_COLUMNS.items():
        values = pd.array(cols[f], dtype=dtype)
        if stored is not None:
            column = stored[f].array
            if m:
                column = column.copy()
                column[todo] = values
            values = column
        data[names[f]] = values
    if outputs:
        data.update(_outputs(per_row, todo, stored, names, outputs, n_choices=n, summary=summary))
    if simulated:  # a fake answer must never pass for a real one, in a frame or in a CSV
        data[names[SIMULATED]] = pd.array([True] * n_rows, dtype="boolean")
    return pd.DataFrame(data, index=index)


def _outputs(per_row: Sequence[Result | None], todo: list, stored: pd.DataFrame | None,
             names: Mapping[str, str], outputs: Sequence[str], *, n_choices: int,
             summary: Sequence[str]) -> dict:
    """What else a completion returned, per row: this run's Result, else the stored value."""
    rows = len(per_row)
    values = {name: (list(stored[name]) if stored is not None else [None] * rows) for name in outputs}
    for pos in todo:
        res = per_row[pos]
        for name in outputs:
            values[name][pos] = getattr(res, name) if res is not None else None
    data: dict[str, Any] = {}
    if "responses" in values:
        data[names["responses"]] = _objects([list(v) if v is not None else None for v in values["responses"]])
    if "logprobs" in values:
        lp = values["logprobs"]
        first = [v[0] if v else None for v in lp]
        data[names["logprobs"]] = _objects(lp if n_choices > 1 else first)
        if "mean" in summary:
            data[names["logprob_mean"]] = pd.array([_mean(v) for v in first], dtype="Float64")
        if "first" in summary:
            data[names["logprob_first"]] = pd.array([v[0]["logprob"] if v else None for v in first], dtype="Float64")
    if "tool_calls" in values:
        data[names["tool_calls"]] = pd.array(values["tool_calls"], dtype="string")
    if "repairs" in values:
        data[names["repairs"]] = pd.array(values["repairs"], dtype="Int64")
    return data


def output_types(outputs: Sequence[str], n: int, names: Mapping[str, str]) -> dict:
    """The Arrow type of each nested output column, by its name (files keep them native)."""
    from ..records import output_arrow_types

    arrow = output_arrow_types()
    types = {}
    if "responses" in outputs:
        types[names["responses"]] = arrow["responses"]
    if "logprobs" in outputs:
        types[names["logprobs"]] = arrow["logprobs"] if n > 1 else arrow["logprobs"].value_type
    if "tool_calls" in outputs:
        types[names["tool_calls"]] = arrow["tool_calls"]
    return types


def _objects(values: list) -> Any:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _mean(tokens: Any) -> float | None:
    got = [t["logprob"] for t in tokens or () if t.get("logprob") is not None]
    return sum(got) / len(got) if got else None
