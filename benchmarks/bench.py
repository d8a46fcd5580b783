"""batchframe benchmarks: run on demand, never part of the test suite.

    python benchmarks/bench.py            # everything (about 6-8 minutes on 2 cores)
    python benchmarks/bench.py --only zero,ckpt,resume --rows 10000

The simulator runs in its own process (``Simulator.spawn``) with its caps off; client-side QPS
limits are off too: these measure what the client costs, not the API's cap. Each figure is
measured side by side with its baseline in the same run (the machine is shared: compare ratios).

Sections
  zero    zero latency, checkpoint on: batchframe vs a hand-written ThreadPoolExecutor + openai loop
  ckpt    checkpoint on vs off (same workers, same rows)
  wait    10,000 in flight against a 30 s queue wait: rows/s vs Little's bound, client peak RSS
  resume  a fully-done 1,000,000-row checkpoint: time until complete() returns having sent nothing
  kill9   kill -9 of a run at ~40 %, then resume: answers paid twice (bound: the calls in flight)
  throttle  30 % of attempts throttled vs none: requests per row, peak QPS/pending seen, wall time
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import platform
import shutil
import sys
import tempfile
import threading
import time

import pandas as pd
import psutil

import batchframe
from batchframe.simulator import Simulator

MODEL = "qwen-plus"


def frame(n: int, tag: str) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"review {tag} {i}: the kettle boils fast and looks nice" for i in range(n)]})


def hand_loop(base_url: str, texts: list[str], workers: int) -> float:
    """What people write by hand: one client, a thread pool, pool.map, the SDK's parsed objects."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=3600)

    def one(text: str) -> str:
        r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}])
        return r.choices[0].message.content

    t = time.perf_counter()
    with cf.ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, texts))
    return len(texts) / (time.perf_counter() - t)


def bf(base_url: str, df: pd.DataFrame, workers: int, checkpoint: str | None) -> tuple[float, pd.DataFrame]:
    t = time.perf_counter()
    out = batchframe.complete(df, "text", model=MODEL, base_url=base_url, max_workers=workers,
                              checkpoint=checkpoint, progress=False)
    rate = len(df) / (time.perf_counter() - t)
    assert (out["status"] == "ok").all(), out["status"].value_counts()
    return rate, out


class PeakRSS:
    """Samples this process's RSS every 50 ms."""

    def __enter__(self):
        self.peak = 0
        self._stop = threading.Event()
        proc = psutil.Process()

        def poll():
            while not self._stop.is_set():
                self.peak = max(self.peak, proc.memory_info().rss)
                self._stop.wait(0.05)

        self._t = threading.Thread(target=poll, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def section_zero(args, tmp: str) -> list[tuple]:
    rows = []
    with Simulator.spawn(max_qps=None, max_pending=None) as sim:
        for workers in (64, 256):
            hand = hand_loop(sim.base_url, list(frame(args.rows, f"h{workers}")["text"]), workers)
            ours, _ = bf(sim.base_url, frame(args.rows, f"b{workers}"), workers, os.path.join(tmp, f"z{workers}"))
            rows.append((f"zero latency, {workers} workers, checkpoint on", f"{ours:,.0f} rows/s",
                         f"hand loop {hand:,.0f} rows/s", f"{ours / hand:.2f}x"))
    return rows


def section_ckpt(args, tmp: str) -> list[tuple]:
    """Wall time moves +-5 % between identical runs here, more than the checkpoint costs; the
    client's CPU time per row (all its threads) is the steadier measure of what it adds."""
    on, off, cpu_on, cpu_off = [], [], [], []
    with Simulator.spawn(max_qps=None, max_pending=None) as sim:
        bf(sim.base_url, frame(1000, "warm"), 64, None)  # imports and first-use costs out of the way
        for rep in range(3):  # alternate to spread the machine's noise over both
            for ckpt, rates, cpus in ((None, off, cpu_off), (os.path.join(tmp, f"c{rep}"), on, cpu_on)):
                cpu = time.process_time()
                rates.append(bf(sim.base_url, frame(args.rows, f"{ckpt is None}{rep}"), 64, ckpt)[0])
                cpus.append((time.process_time() - cpu) / args.rows * 1e6)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    a, b, ca, cb = med(on), med(off), med(cpu_on), med(cpu_off)
    return [("checkpoint on vs off, 64 workers (median of 3)", f"{a:,.0f} rows/s", f"off {b:,.0f} rows/s",
             f"{(1 - a / b) * 100:+.1f}% slower" if a < b else f"{(a / b - 1) * 100:.1f}% faster"),
            ("  client CPU per row, on vs off", f"{ca:,.0f} us", f"off {cb:,.0f} us",
             f"{(ca / cb - 1) * 100:+.1f}% CPU")]


def section_wait(args, tmp: str) -> list[tuple]:
    """Steady state = answers per second from the end of the first wave (every slot has turned over
    once: the ramp is behind) to the start of the last one (the tail, where fewer rows than slots are
    left, is not steady), as the server counted them; overall = rows / wall time, ramp and tail in."""
    inflight, wait_s = args.inflight, args.wait
    n = inflight * args.waves
    bound = inflight / wait_s
    with Simulator.spawn(max_qps=None, max_pending=None, latency="fixed", latency_s=wait_s) as sim:
        df = frame(n, "w")
        samples: list[tuple[float, int, int]] = []
        stop = threading.Event()

        def poll():
            while not stop.wait(0.5):
                s = sim.stats()
                samples.append((time.perf_counter(), s["successes"], s["pending"]))

        poller = threading.Thread(target=poll, daemon=True)
        with PeakRSS() as rss:
            t = time.perf_counter()
            poller.start()
            out = batchframe.complete(df, "text", model=MODEL, base_url=sim.base_url, max_workers=inflight,
                                      max_pending=inflight, checkpoint=os.path.join(tmp, "w"), progress=False)
            total = time.perf_counter() - t
            stop.set()
            poller.join()
        stats = sim.stats()
    assert (out["status"] == "ok").all()
    first = next(i for i, (_, ok, _) in enumerate(samples) if ok >= inflight)
    last = next(i for i, (_, ok, _) in enumerate(samples) if ok >= n - inflight)
    (t1, ok1, _), (t2, ok2, _) = samples[first], samples[last]
    steady = (ok2 - ok1) / (t2 - t1)
    pending = [p for _, _, p in samples[first:last + 1]]
    overall = n / total
    return [(f"{inflight:,} in flight, {wait_s:g} s wait, {n:,} rows: steady state", f"{steady:,.0f} rows/s",
             f"Little's bound {bound:,.0f} rows/s (server pending {min(pending):,}-{max(pending):,}, "
             f"mean {sum(pending) / len(pending):,.0f})", f"{steady / bound * 100:.0f}% of bound"),
            ("  overall, ramp and tail included", f"{overall:,.0f} rows/s",
             f"wall {total:.0f} s, ideal {args.waves * wait_s:.0f} s", f"{overall / bound * 100:.0f}% of bound"),
            ("  client peak RSS / server peak pending", f"{rss.peak / 2**20:,.0f} MiB",
             f"server saw {stats['peak_pending']:,} pending", "")]


def section_resume(args, tmp: str) -> list[tuple]:
    from batchframe.checkpoint.store import CheckpointStore
    from batchframe.pipeline.options import SIMULATOR_ENDPOINT  # noqa: F401  (the hash is endpoint-specific)
    from batchframe.records import Result
    from batchframe.rows.requests import RequestSpec, user_messages

    n = args.resume_rows
    path = os.path.join(tmp, "resume")
    base_url = "http://127.0.0.1:1/v1"  # nothing listens: a sent request would fail the check below
    df = frame(n, "r")
    spec = RequestSpec(base_url=base_url, model=MODEL, params={})
    rid = spec.hasher()
    t = time.perf_counter()
    with CheckpointStore(path, part_rows=200_000) as store:
        for i, text in enumerate(df["text"]):
            store.write([f"i:{i}"], Result(rid(user_messages(None, text)), "ok", response="positive",
                                             finish_reason="stop", prompt_tokens=20, completion_tokens=1,
                                             total_tokens=21, attempts=1))
    build = time.perf_counter() - t
    t = time.perf_counter()
    out = batchframe.complete(df, "text", model=MODEL, base_url=base_url, checkpoint=path, progress=False)
    took = time.perf_counter() - t
    assert out.attrs["batchframe"]["sent"] == 0 and (out["status"] == "ok").all()
    return [(f"resume a fully-done {n:,}-row checkpoint", f"{took:.2f} s", f"(building it took {build:.0f} s)",
             "sent 0")]


KILL_SCRIPT = """
import sys, pandas as pd, batchframe
base_url, ckpt, n, w = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
df = pd.DataFrame({"text": [f"review k {i}: the kettle boils fast and looks nice" for i in range(n)]})
batchframe.complete(df, "text", model="qwen-plus", base_url=base_url, checkpoint=ckpt, max_workers=w,
                    progress=False)
"""


def section_kill9(args, tmp: str) -> list[tuple]:
    """kill -9 at ~40 % of a run, then resume: how many answers were paid twice."""
    import signal
    import subprocess

    n, workers = args.kill_rows, 64
    ckpt = os.path.join(tmp, "kill9")
    with Simulator.spawn(max_qps=None, max_pending=None, latency="uniform", latency_s=0.05) as sim:
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, sim.base_url, ckpt, str(n), str(workers)])
        while sim.stats()["successes"] < 0.4 * n and proc.poll() is None:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        at_kill = sim.stats()["successes"]
        saved = len(batchframe.load_checkpoint(ckpt))
        df = pd.DataFrame({"text": [f"review k {i}: the kettle boils fast and looks nice" for i in range(n)]})
        t = time.perf_counter()
        out = batchframe.complete(df, "text", model=MODEL, base_url=sim.base_url, checkpoint=ckpt,
                                  max_workers=workers, progress=False)
        took = time.perf_counter() - t
        stats = sim.stats()
    assert (out["status"] == "ok").all()
    twice = stats["duplicate_successes"]
    return [(f"kill -9 at {at_kill / n:.0%} of {n:,} rows, {workers} workers", f"{twice} answers paid twice",
             f"{saved:,} rows saved at the kill of {at_kill:,} answered; resume took {took:.1f} s",
             f"bound: {workers} in flight")]


def section_throttle(args, tmp: str) -> list[tuple]:
    """30 % of attempts throttled: retry amplification, the limits as the server saw them, wall time."""
    n, qps, pending = args.rows, 500, 200
    rows = []
    walls = {}
    for rate in (0.0, 0.3):
        with Simulator.spawn(max_qps=None, max_pending=None, latency="exponential", latency_s=0.05,
                             throttle_rate=rate) as sim:
            t = time.perf_counter()
            out = batchframe.complete(frame(n, f"t{rate}"), "text", model=MODEL, base_url=sim.base_url,
                                      max_workers=256, max_pending=pending, qps=qps, progress=False)
            walls[rate] = time.perf_counter() - t
            stats = sim.stats()
        assert (out["status"] == "ok").all()
        rows.append((f"{rate:.0%} throttled, {n:,} rows, qps={qps}, max_pending={pending}",
                     f"{stats['requests'] / n:.2f} requests/row",
                     f"server peak QPS {stats['peak_qps']}, peak pending {stats['peak_pending']}",
                     f"wall {walls[rate]:.1f} s"))
    rows.append(("  throttled vs clean wall time", f"{walls[0.3] / walls[0.0]:.2f}x", "", ""))
    return rows


SECTIONS = {"zero": section_zero, "ckpt": section_ckpt, "wait": section_wait, "resume": section_resume,
            "kill9": section_kill9, "throttle": section_throttle}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    p.add_argument("--rows", type=int, default=10_000, help="rows per zero-latency run")
    p.add_argument("--inflight", type=int, default=10_000)
    p.add_argument("--wait", type=float, default=30.0, help="simulated queue wait, seconds")
    p.add_argument("--waves", type=int, default=4, help="rows = inflight x waves")
    p.add_argument("--resume-rows", type=int, default=1_000_000)
    p.add_argument("--kill-rows", type=int, default=10_000)
    args = p.parse_args()
    import logging

    logging.getLogger("batchframe").setLevel(logging.ERROR)  # "no price known": not news here
    tmp = tempfile.mkdtemp(prefix="bf-bench-")
    print(f"# batchframe {batchframe.__version__} benchmarks, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load avg {os.getloadavg()[0]:.1f}")
    print(f"# command: python {' '.join(sys.argv)}")
    try:
        for name in args.only.split(","):
            for row in SECTIONS[name](args, tmp):
                print(" | ".join(str(c) for c in row), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
