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
                   reused: np.ndarray | None = None, simulated: bool = False) -> pd.DataFrame:
    """Typed result columns for every row (``stored``/``reused``: the checkpoint's answers, aligned)."""
    n = len(per_row)
    todo = list(range(n)) if reused is None else np.flatnonzero(~reused).tolist()
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
    if simulated:  # a fake answer must never pass for a real one, in a frame or in a CSV
        data[names[SIMULATED]] = pd.array([True] * n, dtype="boolean")
    return pd.DataFrame(data, index=index)
