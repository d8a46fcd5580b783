"""Peak memory and speed of ``batchframe run`` on 200,000- and 1,000,000-row Parquet inputs.

The goal: the CLI's memory is flat in the number of rows (within 10 % between the two sizes) and
under 1 GiB. Each size runs the real console script in a subprocess against a spawned simulator
with no latency and no limits (``Simulator.spawn(max_qps=None, max_pending=None)``), many workers,
no QPS cap, with the default checkpoint and a Parquet output. Peak RSS is the child's VmHWM
(``/proc/<pid>/status``, the kernel's high-water mark), polled until it exits; rows/s is rows over
the child's wall time. The input is written by ``DataFrame.to_parquet`` with its defaults (one row
group per million rows), so the reader has to stream inside a row group too.

    python benchmarks/bench_cli_memory.py                  # 200k and 1M rows (1M takes minutes)
    python benchmarks/bench_cli_memory.py --rows 50000 200000 --workers 256
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from batchframe.simulator import Simulator

WORDS = np.array("good bad fine broken love hate works stopped cheap pricey fast slow quiet loud soft "
                 "comfortable returned again would buy never ever".split())


def make_input(path: Path, n: int, seed: int = 0) -> None:
    """``n`` review-like rows (~120 characters of text each), every prompt distinct."""
    rng = np.random.default_rng(seed)
    words = WORDS[rng.integers(0, len(WORDS), size=(n, 18))]
    text = pd.Series([" ".join(w) for w in words.tolist()])
    df = pd.DataFrame({"id": np.arange(n), "product": rng.choice(["kettle", "boots", "lamp", "mouse"], n),
                       "rating": rng.integers(1, 6, n), "review": ("#" + pd.Series(np.arange(n)).astype(str)
                                                                   + " " + text)})
    df.to_parquet(path, index=False)


def _hwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def run_once(n: int, workers: int, batch_rows: int | None, work: Path) -> dict:
    inp, out = work / f"in-{n}.parquet", work / f"out-{n}.parquet"
    if not inp.exists():
        make_input(inp, n)
    for p in (out, Path(f"{out}.checkpoint")):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    exe = Path(sys.executable).parent / "batchframe"
    cmd = [str(exe) if exe.exists() else "batchframe", "run", str(inp), "-o", str(out),
           "--prompt-col", "review", "--model", "qwen-plus", "--workers", str(workers), "--no-progress"]
    if batch_rows:
        cmd += ["--batch-rows", str(batch_rows)]
    with Simulator.spawn(max_qps=None, max_pending=None) as sim:
        cmd += ["--base-url", sim.base_url]
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _hwm_kib(proc.pid) or 0)
            time.sleep(0.1)
        wall = time.monotonic() - start
        err = proc.stderr.read()
        sent = sim.stats()["successes"]
    if proc.returncode != 0:
        raise SystemExit(f"batchframe run failed ({proc.returncode}):\n{err}")
    rows_out = pd.read_parquet(out, columns=["status"])["status"].eq("ok").sum()
    return {"rows": n, "peak_rss_mib": peak / 1024, "wall_s": wall, "rows_per_s": n / wall,
            "ok_rows": int(rows_out), "requests": sent}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[200_000, 1_000_000])
    ap.add_argument("--workers", type=int, default=512)
    ap.add_argument("--batch-rows", type=int, default=None, help="default: the CLI's")
    ap.add_argument("--dir", type=Path, default=None, help="working directory (default: a temp dir)")
    args = ap.parse_args(argv)
    work = args.dir or Path(tempfile.mkdtemp(prefix="bench-cli-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for n in args.rows:
        r = run_once(n, args.workers, args.batch_rows, work)
        results.append(r)
        print(f"{r['rows']:>9,} rows: peak RSS {r['peak_rss_mib']:7.1f} MiB, {r['rows_per_s']:7.0f} rows/s "
              f"({r['wall_s']:.0f} s; {r['ok_rows']:,} ok, {r['requests']:,} requests)", flush=True)
    if len(results) > 1:
        lo, hi = min(r["peak_rss_mib"] for r in results), max(r["peak_rss_mib"] for r in results)
        print(f"peak RSS spread {100 * (hi - lo) / lo:.1f} % (goal <= 10 %), max {hi:.0f} MiB (goal <= 1024)")
    if args.dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
