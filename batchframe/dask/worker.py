"""What runs on a Dask worker for one partition (batchframe.dask builds the graph around it).

Per partition: take one of the job's ``slots`` (a ``distributed.Semaphore`` on a cluster, a process
semaphore under the local schedulers), so that no more than ``slots`` partitions ever run at once;
then run :func:`batchframe.complete` on the partition with the job's per-slot share of the account's
limits, its own openai client (built inside the call, on the worker) and its own checkpoint
directory ``<root>/part-<i>``. While it runs, a watcher stops the engine if the Dask job lets go
of the task (``compute()`` raised because another partition hit a run-fatal error, or the user
cancelled): dispatch stops at once, nothing more is sent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd

from ..exceptions import RunFatalError

_POLL_S = 0.2
_LOCAL_GATES: dict[str, threading.BoundedSemaphore] = {}
_LOCAL_GATES_LOCK = threading.Lock()


class Secret:
    """The API key on its way to the workers: never shown by a repr (dashboards, logs, errors)."""

    __slots__ = ("value",)

    def __init__(self, value: str | None) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "Secret('***')" if self.value else "Secret(None)"

    def __reduce__(self) -> Any:
        return (Secret, (self.value,))


@dataclasses.dataclass(frozen=True)
class PartitionJob:
    """Everything one partition needs; pickled into the graph (the key inside a ``Secret``)."""

    name: str                      # unique per graph: names the slot semaphore
    slots: int                     # partitions that may run at once
    kwargs: Mapping[str, Any]      # batchframe.complete's keyword arguments, budget already split
    api_key: Secret
    root: str | None               # checkpoint root (local path or fsspec URL), or None
    root_meta: Mapping[str, Any]   # written to <root>/_batchframe_dask.json
    start_delay_s: float = 0.0     # wait after taking a slot, before sending (see batchframe.dask)


def run_partition(part: pd.DataFrame, job: PartitionJob, partition_info: Mapping | None = None) -> pd.DataFrame:
    """The map_partitions function: one partition through batchframe.complete."""
    from ..pipeline.frame import run_frame
    from ..pipeline.options import resolve

    if partition_info is None and job.root is not None:  # every partition would share part-0
        raise RuntimeError("batchframe.dask: Dask passed no partition_info; cannot name the checkpoint")
    index = int(partition_info["number"]) if partition_info else 0
    watch = _Watch()
    with _slot(job, watch):
        if watch.cancelled():  # released while waiting for a slot: the job is over
            raise RunFatalError(f"partition {index}: the Dask job was cancelled before it started; "
                                "nothing was sent")
        if job.start_delay_s:
            time.sleep(job.start_delay_s)
        kwargs = dict(job.kwargs)
        if job.api_key.value:
            kwargs["api_key"] = job.api_key.value
        try:
            with _checkpoint(job, index) as ckpt:
                if ckpt is not None:
                    kwargs["checkpoint"] = ckpt
                out = run_frame(part, resolve(**kwargs), on_engine=watch.attach)
        except RunFatalError as exc:
            exc.partial = None  # its rows are in the partition's checkpoint; keep the exception small
            exc.partition = index
            exc.args = (f"partition {index}: {exc.args[0] if exc.args else exc}",) + tuple(exc.args[1:])
            raise
        finally:
            watch.close()
    out.attrs = {}  # the per-partition summary does not survive concatenation: drop it
    return out


@contextlib.contextmanager
def _checkpoint(job: PartitionJob, index: int) -> Iterator[str | None]:
    if job.root is None:
        yield None
        return
    from . import store as _dask_store

    _dask_store.write_root_meta(job.root, dict(job.root_meta))
    with _dask_store.partition_checkpoint(job.root, index) as path:
        yield path


# ---------------------------------------------------------------------------------- the job's slots

def _in_distributed_worker() -> Any:
    try:
        from distributed import get_worker
    except ImportError:
        return None
    try:
        return get_worker()
    except ValueError:
        return None


@contextlib.contextmanager
def _slot(job: PartitionJob, watch: _Watch) -> Iterator[None]:
    """Hold one of the job's ``slots`` for the partition's whole run."""
    if watch.worker is not None:
        from distributed import Semaphore

        sem = Semaphore(max_leases=job.slots, name=job.name)
        while not sem.acquire(timeout=1.0):
            if watch.cancelled():
                yield
                return
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # a lost lease times out on the scheduler anyway
                sem.release()
        return
    with _LOCAL_GATES_LOCK:
        gate = _LOCAL_GATES.setdefault(job.name, threading.BoundedSemaphore(job.slots))
    with gate:
        yield


class _Watch:
    """Stops the partition's engine when the Dask worker lets go of the task (job cancelled)."""

    def __init__(self) -> None:
        self.worker = _in_distributed_worker()
        self._key = None
        if self.worker is not None:
            from distributed.worker import thread_state

            self._key = getattr(thread_state, "key", None)
        self._engine: Any = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def cancelled(self) -> bool:
        if self.worker is None or self._key is None:
            return False
        try:
            ts = self.worker.state.tasks.get(self._key)
        except Exception:  # noqa: BLE001  a read racing the worker's event loop: ask again next time
            return False
        return ts is None or ts.state in ("cancelled", "released", "forgotten")

    def attach(self, engine: Any) -> None:
        """Called by the run with its engine (``on_engine``); starts watching."""
        with self._lock:
            self._engine = engine
        if self.worker is None or self._key is None:
            return
        if self.cancelled():
            engine.stop("cancelled")
            return
        self._thread = threading.Thread(target=self._loop, name="batchframe-dask-watch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._done.wait(_POLL_S):
            if self.cancelled():
                with self._lock:
                    if self._engine is not None:
                        self._engine.stop("cancelled")
                return

    def close(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
