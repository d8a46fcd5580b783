"""Sets of 64-bit hashes at 8 bytes each: which keys and requests a checkpoint holds, which requests
a run already answered, which distinct requests an estimate counted — over any number of rows.

``hashes(values)`` hashes strings vectorised; a collision only costs a lookup that finds nothing
(every hit is confirmed against the stored rows themselves).
"""

from __future__ import annotations

import mmap
from typing import Sequence

import numpy as np
import pandas as pd


def hashes(values: Sequence[str]) -> np.ndarray:
    """64-bit hashes of strings (vectorised; a collision only costs a lookup that finds nothing)."""
    if not len(values):
        return np.empty(0, dtype=np.uint64)
    return pd.util.hash_array(np.asarray(values, dtype=object), categorize=False)


MAX_RUN = 1 << 20
_OWN_MAPPING = 1 << 16  # values (512 KiB): a run this large gets an anonymous mapping of its own
_BLOCK = 1 << 16


def _new_run(n: int) -> np.ndarray:
    """Room for ``n`` hashes. A large run lives in an anonymous mapping of its own, unmapped the
    moment the run is dropped. Through malloc, every merge would free multi-MiB arrays, and glibc
    raises its mmap threshold to the largest chunk freed (up to 32 MiB): from then on everything
    smaller (the next merges, every batch's arrays, the worker threads' buffers) comes from the
    heaps, which keep what is freed. With 1M answers that was +45 MiB resident (and +27 MiB at the
    merge), growing with the row count; like this it is the runs' 8 bytes a value."""
    if n < _OWN_MAPPING:
        return np.empty(n, dtype=np.uint64)
    return np.frombuffer(mmap.mmap(-1, n * 8), dtype=np.uint64)


def _merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sorted union of two sorted runs, with nothing the size of the result but the result (a
    value added twice, e.g. a request answered twice, is rare: then a second pass drops it)."""
    out = _new_run(len(a) + len(b))
    np.concatenate([a, b], out=out)
    out.sort()
    n = len(out)
    for i in range(1, n, _BLOCK):
        j = min(i + _BLOCK, n)
        if (out[i:j] == out[i - 1:j - 1]).any():
            uniq = np.unique(out)
            out = _new_run(len(uniq))
            out[:] = uniq
            break
    return out


class SeenHashes:
    """A set of 64-bit hashes at 8 bytes each: sorted numpy runs (merged as they grow, so a lookup
    searches a handful) plus a small set of recent ones (``batchframe estimate`` counts distinct
    requests over any number of rows with it; a run remembers the requests it answered)."""

    def __init__(self, flush_at: int = 1 << 16) -> None:
        self._runs: list[np.ndarray] = []
        self._recent: set[int] = set()
        self._flush_at = flush_at
        self._size = 0

    def __len__(self) -> int:
        return self._size + len(self._recent)

    def contains(self, values: np.ndarray) -> list[bool]:
        known = np.zeros(len(values), dtype=bool)
        for run in self._runs:
            at = np.minimum(np.searchsorted(run, values), len(run) - 1)
            known |= run[at] == values
        recent = self._recent
        return [k or v in recent for v, k in zip(values.tolist(), known.tolist())]

    def add(self, values: np.ndarray) -> None:
        self._recent.update(values.tolist())
        self._flush()

    def first_seen(self, values: np.ndarray) -> list[bool]:
        """Per value: not seen before (earlier in ``values`` included); all are added."""
        out, recent = [], self._recent
        for v, known in zip(values.tolist(), self.contains(values)):
            new = not known and v not in recent
            if new:
                recent.add(v)
            out.append(new)
        self._flush()
        return out

    def _flush(self) -> None:
        recent = self._recent
        if len(recent) < self._flush_at:
            return
        run = np.sort(np.fromiter(recent, dtype=np.uint64, count=len(recent)))
        recent.clear()
        runs = self._runs
        runs.append(run)
        # sizes halve down the list (a lookup searches a handful of runs), up to MAX_RUN values a
        # run: a merge never holds more than the two runs and the result (at most 16 MiB)
        while len(runs) > 1 and 2 * len(runs[-1]) >= len(runs[-2]) and len(runs[-2]) < MAX_RUN:
            last = runs.pop()
            runs[-1] = _merge(runs[-1], last)
        self._size = sum(len(r) for r in runs)
