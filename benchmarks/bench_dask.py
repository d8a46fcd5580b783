"""Dask throughput: rows/s with 1 vs 2 worker processes against the simulator at zero latency,
plus the global limits observed by the simulator when max_pending and qps are set below the load.

    python benchmarks/bench_dask.py [--rows 20000] [--partitions 8] [--max-workers 64]

The simulator runs in its own process (Simulator.spawn), so the figures measure batchframe's
client side: per-row request building, the openai SDK, HTTP, parsing, checkpoint writes. On a
2-core machine the simulator and the workers share the cores: read the 2-worker figure as a floor.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import dask
import dask.dataframe as dd
import pandas as pd
from distributed import Client, LocalCluster

import batchframe
import batchframe.dask  # registers ddf.batchchat
from batchframe.simulator import Simulator

MODEL = "qwen-plus"


def frame(n: int, tag: str) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"{tag} review {i}: it works fine" for i in range(n)]})


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def bench_workers(n_workers: int, args, sim, tmp: str) -> float:
    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}), \
            LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                         dashboard_address=None) as cluster, Client(cluster):
        warm = dd.from_pandas(frame(200, f"warm{n_workers}"), npartitions=n_workers)
        warm.batchchat.complete(prompt_col="text", model=MODEL, base_url=sim.base_url).compute()
        ddf = dd.from_pandas(frame(args.rows, f"w{n_workers}"), npartitions=args.partitions).persist()
        ckpt = os.path.join(tmp, f"w{n_workers}") if args.checkpoint else None
        secs, out = timed(lambda: ddf.batchchat.complete(
            prompt_col="text", model=MODEL, base_url=sim.base_url, max_workers=args.max_workers,
            checkpoint=ckpt).compute())
    assert (out["status"] == "ok").all(), out["status"].value_counts()
    return args.rows / secs


def bench_limits(args) -> dict:
    rows, pending, qps = 1600, 8, 200
    with Simulator.spawn(latency_s=0.025, max_qps=None, max_pending=None) as sim, \
            dask.config.set({"distributed.scheduler.worker-saturation": 1.0}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster):
        ddf = dd.from_pandas(frame(rows, "limits"), npartitions=4)
        secs, out = timed(lambda: ddf.batchchat.complete(
            prompt_col="text", model=MODEL, base_url=sim.base_url, max_workers=256,
            max_pending=pending, qps=qps).compute())
        stats = sim.stats()
    return {"rows": rows, "max_pending": pending, "qps": qps, "latency_s": 0.025,
            "peak_pending": stats["peak_pending"], "peak_qps": stats["peak_qps"],
            "rows_per_s": round(rows / secs, 1), "ok": int((out["status"] == "ok").sum())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--max-workers", type=int, default=64)
    p.add_argument("--checkpoint", action="store_true", help="checkpoint each partition to a temp dir")
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-dask-")
    try:
        with Simulator.spawn(latency_s=0.0, max_qps=None, max_pending=None) as sim:
            pdf = frame(args.rows, "pandas")
            secs, _ = timed(lambda: batchframe.complete(pdf, "text", model=MODEL, base_url=sim.base_url,
                                                        max_workers=args.max_workers, progress=False))
            print(f"pandas, one process:    {args.rows / secs:8.0f} rows/s")
            one = bench_workers(1, args, sim, tmp)
            print(f"dask, 1 worker process: {one:8.0f} rows/s")
            two = bench_workers(2, args, sim, tmp)
            print(f"dask, 2 worker processes: {two:6.0f} rows/s  ({two / one:.2f}x)")
        print("limits below the load:", bench_limits(args))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
