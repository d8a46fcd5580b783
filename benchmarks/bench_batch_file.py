"""Batch File mode at the real limits: ``batchframe run --mode file`` on 60,000- and 120,000-row inputs.

The goals: at 120,000 rows, at least 3 batch files, none over 50,000 lines (the defaults:
``--file-max-lines 50000``, 500 MiB); peak RSS flat in the row count (the file build and the merge
stream: within 10 % between the sizes). Each size runs the real console script in a subprocess
against a spawned simulator (no latency, no limits: the batches finish as fast as it can answer
their lines), with the default checkpoint and a Parquet output; peak RSS is the child's VmHWM, polled
until it exits. The files per run and their lines come from the job log the checkpoint keeps. With
``--modes file chat`` the same inputs also run through Batch Chat, side by side (client wall time and
memory only: a real batch's queueing is the server's, hours, and is not simulated here).

    python benchmarks/bench_batch_file.py                        # 60k and 120k rows, file mode
    python benchmarks/bench_batch_file.py --rows 120000 240000 --modes file chat
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cli_memory import _hwm_kib, make_input  # noqa: E402

from batchframe.batchfile.record import JobLog  # noqa: E402
from batchframe.simulator import Simulator  # noqa: E402


def run_once(n: int, mode: str, work: Path) -> dict:
    inp, out = work / f"in-{n}.parquet", work / f"out-{n}-{mode}.parquet"
    if not inp.exists():
        make_input(inp, n)
    ckpt = Path(f"{out}.checkpoint")
    for p in (out, ckpt):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    exe = Path(sys.executable).parent / "batchframe"
    cmd = [str(exe) if exe.exists() else "batchframe", "run", str(inp), "-o", str(out), "--prompt-col", "review",
           "--model", "qwen-plus", "--mode", mode, "--poll", "0.5", "--workers", "512", "--no-progress"]
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
        stats = sim.stats()
    if proc.returncode != 0:
        raise SystemExit(f"batchframe run failed ({proc.returncode}):\n{err}")
    ok = int(pd.read_parquet(out, columns=["status"])["status"].eq("ok").sum())
    lines = [c.lines for c in JobLog(str(ckpt)).chunks.values()] if mode == "file" else []
    return {"rows": n, "mode": mode, "peak_rss_mib": peak / 1024, "wall_s": wall, "ok": ok, "files": len(lines),
            "max_lines": max(lines, default=0), "billed": stats["billed"], "duplicates": stats["duplicate_successes"],
            "files_left": stats["files_stored"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[60_000, 120_000])
    ap.add_argument("--modes", nargs="+", default=["file"], choices=["file", "chat"])
    ap.add_argument("--dir", type=Path, default=None, help="working directory (default: a temp dir)")
    args = ap.parse_args(argv)
    work = args.dir or Path(tempfile.mkdtemp(prefix="bench-batch-file-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for mode in args.modes:
        for n in args.rows:
            r = run_once(n, mode, work)
            results.append(r)
            files = (f"; {r['files']} files, at most {r['max_lines']:,} lines, {r['files_left']} left on the server"
                     if mode == "file" else "")
            print(f"{mode:>4} {r['rows']:>9,} rows: peak RSS {r['peak_rss_mib']:7.1f} MiB, {r['wall_s']:6.1f} s, "
                  f"{r['rows'] / r['wall_s']:7.0f} rows/s; {r['ok']:,} ok, {r['billed']:,} billed, "
                  f"{r['duplicates']} paid twice{files}", flush=True)
    for mode in args.modes:
        mine = [r for r in results if r["mode"] == mode]
        if len(mine) > 1:
            lo, hi = min(r["peak_rss_mib"] for r in mine), max(r["peak_rss_mib"] for r in mine)
            print(f"{mode}: peak RSS spread {100 * (hi - lo) / lo:.1f} % over {mine[0]['rows']:,}-"
                  f"{mine[-1]['rows']:,} rows (goal <= 10 %)")
    if args.dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
