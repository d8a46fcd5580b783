"""batchframe on Dask: ``ddf.batchchat.complete(...)`` on a dask.dataframe (``pip install batchframe[dask]``).

    import batchframe.dask  # registers ddf.batchchat (importing batchframe alone never imports dask)
    out = ddf.batchchat.complete(prompt_col="review", model="qwen-plus", checkpoint="s3://bucket/runs/reviews",
                                 max_pending=10_000, qps=1_000)
    out.to_parquet("s3://bucket/labeled/")   # lazy until here, like any Dask operation

Each partition goes through the same engine as ``batchframe.complete`` with its own openai client,
built on the worker. Options are validated on the client before the graph is built (a typo, a missing
column or a missing key fails at once, not on a worker). The result has the pandas result's columns
and dtypes; a run-fatal error in any partition raises ``RunFatalError`` from ``compute()`` and stops the
partitions still running (their finished rows stay in their checkpoints).

Checkpoints: ``checkpoint=root`` gives partition ``i`` the checkpoint ``<root>/part-<i>``; rerunning
the same call resumes partition by partition. See ``batchframe._dask_store`` for local vs object-store
roots.

The account's limits are global: ``max_pending`` and ``qps`` are split evenly over the partitions
that may run at once (``concurrent_partitions``, default: the cluster's worker threads), and a
``distributed.Semaphore`` (a process semaphore under the local schedulers) guarantees no more than
that many run at once, even if the cluster grows while the job runs. Each running partition stays
under its share, so all of them together stay under the account's limits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import dask.dataframe as dd
import pandas as pd
from dask.dataframe.extensions import register_dataframe_accessor

from ..pipeline.frame import run_frame
from ..pipeline.options import RunOptions, resolve
from .worker import PartitionJob, Secret, run_partition
from ..records import RESULT_COLUMNS
from ..exceptions import ConfigError

__all__ = ["DaskBatchChatAccessor", "complete"]

log = logging.getLogger("batchframe")

# Run-wide budgets that cannot be split among partitions that run one after another.
_REFUSED = {
    "max_cost": "max_cost is a budget for one run; on Dask every partition is a run of its own. "
                "Run the frame in slices (ddf.partitions[a:b]) and check the cost between them.",
    "deadline_s": "deadline_s counts from a run's start; on Dask every partition is a run of its own. "
                  "Run the frame in slices, or cancel the computation (its checkpoint keeps what finished).",
    "client": "an openai client cannot be pickled and sent to workers; pass base_url= (and the key in "
              "the environment, or api_key=) and each partition builds its own.",
}


def complete(ddf: dd.DataFrame, prompt_col: str | None = None, *,
             concurrent_partitions: int | None = None, **kwargs: Any) -> dd.DataFrame:
    """Lazy ``batchframe.complete`` over a dask DataFrame: one chat completion per row.

    Takes every option of :func:`batchframe.complete` (``model``, ``template``, ``system``,
    ``checkpoint``, ``max_workers``, ``max_pending``, ``qps``, request parameters, ``prefix``/
    ``suffix``, ...), plus ``concurrent_partitions``: how many partitions may run at once (default:
    the total worker threads of the current ``distributed`` client, else the local scheduler's).
    ``max_pending`` and ``qps`` are account-wide: each running partition gets an even share.
    ``checkpoint`` is a root directory (local path or fsspec URL): partition ``i`` checkpoints to
    ``<root>/part-<i>``. ``max_cost`` and ``deadline_s`` are refused (per-run budgets); the
    progress bar is off on workers and the per-partition summary is dropped.
    """
    if not isinstance(ddf, dd.DataFrame):
        raise ConfigError(f"expected a dask DataFrame, got {type(ddf).__name__}; "
                          "for a pandas DataFrame use batchframe.complete")
    for name, why in _REFUSED.items():
        if kwargs.get(name) is not None:
            raise ConfigError(f"{name}= is not supported on Dask: {why}")
    if kwargs.get("mode", "chat") != "chat":
        raise ConfigError(f"mode={kwargs['mode']!r} is not supported on Dask: one Batch File job per partition "
                          "would split the file limits and the job log across workers. Run Batch File jobs "
                          "with batchframe.complete(mode='file') or `batchframe run --mode file` (which "
                          "streams files bigger than memory).")
    kwargs["progress"] = False
    meta = ddf._meta
    opts = _resolve(prompt_col, kwargs)

    npartitions = ddf.npartitions
    slots = min(_slots(concurrent_partitions), max(1, npartitions), opts.max_pending)
    pending_share = opts.max_pending // slots
    qps_share = opts.qps / slots if opts.qps is not None else None
    call = {**kwargs, "prompt_col": prompt_col, "max_pending": pending_share, "qps": qps_share,
            "max_workers": min(opts.max_workers, pending_share), "checkpoint": None}
    call.pop("api_key", None)
    if not kwargs.get("simulate"):
        call["base_url"] = opts.spec.base_url  # resolved here: the workers' environment may differ
    out_meta = _output_meta(meta, opts)
    root = kwargs.get("checkpoint")
    root_meta = {}
    if root is not None:
        from .. import __version__
        from . import store as _dask_store

        root = _fspath(root)
        _dask_store.check_root(root, npartitions, log)
        root_meta = {"npartitions": npartitions, "model": opts.spec.model,
                     "endpoint": opts.spec.endpoint or opts.spec.base_url, "library_version": __version__}
    log.info("batchframe.dask: %d partitions, at most %d at once, each with max_pending=%d, qps=%s",
             npartitions, slots, pending_share, f"{qps_share:g}" if qps_share else None)
    job = PartitionJob(name=f"batchframe-{uuid.uuid4().hex}", slots=slots, kwargs=call,
                       api_key=Secret(opts.api_key), root=root, root_meta=root_meta,
                       start_delay_s=_start_delay(qps_share))
    return ddf.map_partitions(run_partition, job, meta=out_meta)


def _resolve(prompt_col: str | None, kwargs: dict) -> RunOptions:
    """The run's options, resolved on the client as each partition will resolve them (the same
    resolver as complete(): a typo, a missing key or a bad value fails here, not on a worker)."""
    if kwargs.get("local"):
        raise ConfigError("local= is not supported on Dask: it would start a model server per partition. "
                          "Start one server the workers can reach (llama.cpp, vLLM, Ollama) and pass base_url=")
    opts = resolve(prompt_col, **kwargs)
    if opts.structured is not None and opts.structured.parse and opts.structured.fields is None:
        raise ConfigError("parse=True with response_format={'type': 'json_object'} makes one column per "
                          "key the answers happen to use, which Dask must know before it sees the data: "
                          "give a json_schema with properties, or a pydantic model class")
    return opts


def _output_meta(meta: pd.DataFrame, opts: RunOptions) -> pd.DataFrame:
    """The result of the pandas path on the empty meta frame: the input's columns plus the result
    columns (and any parsed ones) with exactly the dtypes a partition will have. Checks the frame
    on the way (missing columns, clashes with the result columns, a bad template). An empty frame
    starts nothing, sends nothing and opens no connection."""
    col = opts.rows.prompt_col
    if col is not None and col in meta.columns:
        dtype = meta[col].dtype
        if not (pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype)
                or isinstance(dtype, pd.CategoricalDtype)):
            raise ConfigError(f"prompt_col {col!r} holds non-text values (dtype {dtype}); convert it with "
                              f"ddf[{col!r}].astype('string') or use template=")
    with _quiet():  # the notes are for the real runs, logged by each partition
        out = run_frame(meta.iloc[:0], dataclasses.replace(opts, checkpoint=None, progress=False))
    expected = [opts.names[c] for c in RESULT_COLUMNS]
    missing = [c for c in expected if c not in out.columns]
    if missing:  # the pandas path changed shape: better to fail here than on the workers
        raise RuntimeError(f"batchframe.dask: the result of an empty run lacks {missing}")
    out = out.iloc[:0].copy()
    out.attrs = {}
    return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence batchframe's log records made by this thread for the duration."""
    me = threading.get_ident()

    def drop(record: logging.LogRecord) -> bool:
        return record.thread != me

    log.addFilter(drop)
    try:
        yield
    finally:
        log.removeFilter(drop)


def _start_delay(qps_share: float | None) -> float:
    """How long a partition waits after taking its slot before it sends anything.

    A partition's token bucket starts full: ``burst = max(1, share / 20)`` tokens (the engine's 50 ms
    burst), refilled at a rate of at least ``share / 2``. Within any one-second window a bucket sends
    at most its rate plus one burst, which the engine keeps under ``share``. If the next partition on
    the same slot sent its fresh burst right away, that window could hold two bursts; waiting the
    time the old bucket needs to earn one burst (``burst / rate``) removes the second, so the slots
    together stay under ``qps``, with no tolerance needed. A few tens of milliseconds per partition.
    """
    if qps_share is None:
        return 0.0
    return max(1.0, qps_share / 20) / (qps_share / 2)


def _slots(given: int | None) -> int:
    """How many partitions may run at once: given, else the cluster's (or local pool's) threads."""
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, int) or given < 1:
            raise ConfigError(f"concurrent_partitions must be a positive int, got {given!r}")
        return given
    client = _distributed_client()
    if client is not None:
        threads = sum(client.nthreads().values())
        if threads < 1:
            log.warning("batchframe.dask: the cluster has no workers yet; running one partition at a "
                        "time (pass concurrent_partitions= to choose)")
        return max(1, threads)
    import dask

    if dask.config.get("scheduler", None) in ("sync", "synchronous", "single-threaded"):
        return 1
    from dask.system import CPU_COUNT

    return int(dask.config.get("num_workers", None) or CPU_COUNT)


def _distributed_client() -> Any:
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


def _fspath(root: Any) -> str:
    """The root as a string; a plain local path made absolute (the workers' cwd may differ)."""
    import os

    root = root if isinstance(root, str) else os.fspath(root)
    return root if "://" in root else os.path.abspath(os.path.expanduser(root))


@register_dataframe_accessor("batchchat")
class DaskBatchChatAccessor:
    """``ddf.batchchat.complete(prompt_col=..., model=...)``: see :func:`batchframe.dask.complete`."""

    def __init__(self, ddf: dd.DataFrame) -> None:
        self._ddf = ddf

    def complete(self, prompt_col: str | None = None, **kwargs: Any) -> dd.DataFrame:
        return complete(self._ddf, prompt_col, **kwargs)


DaskBatchChatAccessor.complete.__doc__ = complete.__doc__
