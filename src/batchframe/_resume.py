"""Resume: which rows a checkpoint already answered, and their stored columns, in one Arrow pass.

A row is reused when the checkpoint's latest row for its key answered the same request hash and
succeeded, or failed for good (unless the caller asks to retry that failure); or, failing that,
when another key's latest row answered the same request successfully (an identical request).
Everything is joined in Arrow (hash lookups in C), so a fully-done 1,000,000-row checkpoint is
matched in about a second instead of several.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._checkpoint_read import _read_all
from ._records import OK, RESULT_COLUMNS, is_transient

_MAPPING: dict | None = None


def _types_mapper(t: pa.DataType) -> Any:
    global _MAPPING
    if _MAPPING is None:
        import pandas as pd

        _MAPPING = {pa.large_string(): pd.StringDtype(), pa.string(): pd.StringDtype(),
                    pa.int64(): pd.Int64Dtype(), pa.float64(): pd.Float64Dtype()}
    return _MAPPING.get(t)


class Reuse:
    """``mask[pos]``: row ``pos`` is answered by the checkpoint; ``stored``: the result columns
    of every row (NA where not reused), positionally aligned, as a pandas frame."""

    def __init__(self, path: str | os.PathLike, keys: Sequence[str], rids: Sequence[str | None],
                 retry_failed: bool | tuple[str, ...]) -> None:
        table = _read_all(os.fspath(path), ["rid", "status", *RESULT_COLUMNS])
        n = len(keys)
        if table.num_rows == 0:
            self.mask = [False] * n
            self.count = 0
            self.stored = None
            return
        # latest first, so that a lookup's first match is the current row of its key
        seq = table["seq"].to_numpy()
        if len(seq) > 1 and bool(np.all(seq[1:] > seq[:-1])):
            order = np.arange(len(seq) - 1, -1, -1)
        else:
            order = np.argsort(-seq, kind="stable")
        table = table.take(order)
        want_rids = pa.array(rids, type=table["rid"].type)
        at = pc.index_in(pa.array(keys, type=table["key"].type), value_set=table["key"])
        same = pc.fill_null(pc.equal(table["rid"].take(at), want_rids), False)
        status = table["status"].take(at)
        ok = pc.and_(same, pc.fill_null(pc.equal(status, OK), False))
        use = ok.to_numpy(zero_copy_only=False).copy()
        source = pc.fill_null(at, -1).to_numpy().astype(np.int64)  # -1: key not stored
        # stored failures of the same request: kept if permanent, unless asked to retry them
        failed_same = np.flatnonzero(pc.and_(same, pc.invert(pc.fill_null(pc.equal(status, OK), False)))
                                     .to_numpy(zero_copy_only=False))
        if len(failed_same):
            errors = table["error"].take(pa.array(source[failed_same])).to_pylist()
            codes = table["error_code"].take(pa.array(source[failed_same])).to_pylist()
            for pos, err, code in zip(failed_same.tolist(), errors, codes):
                rerun = retry_failed is True or is_transient(err) or (bool(retry_failed) and code in retry_failed)
                use[pos] = not rerun
        # an identical request answered for another key
        missing = np.flatnonzero(~use & pc.is_valid(want_rids).to_numpy(zero_copy_only=False))
        if len(missing):
            ok_rows = table.filter(pc.equal(table["status"], OK))
            ok_rows_pos = np.flatnonzero(pc.fill_null(pc.equal(table["status"], OK), False)
                                         .to_numpy(zero_copy_only=False))
            hit = pc.index_in(want_rids.take(pa.array(missing)), value_set=ok_rows["rid"])
            found = pc.is_valid(hit).to_numpy(zero_copy_only=False)
            if found.any():
                hit_pos = hit.filter(pc.is_valid(hit)).to_numpy()
                use[missing[found]] = True
                source[missing[found]] = ok_rows_pos[hit_pos]
        take = pa.array(np.where(use, source, 0)).cast(pa.int64())
        take = pc.if_else(pa.array(use), take, pa.scalar(None, pa.int64()))
        self.stored = table.select(list(RESULT_COLUMNS)).take(take).to_pandas(
            types_mapper=_types_mapper, ignore_metadata=True)
        self.mask = use.tolist()
        self.count = int(use.sum())
