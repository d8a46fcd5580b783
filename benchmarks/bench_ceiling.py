"""The API's ceiling from one process, and the wire against its baselines, side by side in one run.

    python benchmarks/bench_ceiling.py                      # all sections (about 6 minutes on 2 cores)
    python benchmarks/bench_ceiling.py --only ceiling --rows 60000
    python benchmarks/bench_ceiling.py --only ceiling,ceiling-bare --qps 400 --pending 4000 --rows 24000 \
        --bare-rows 16000   # the same case scaled to what two shared cores carry (client and server)

Sections
  ceiling  10,000 pending, 1,000 QPS, a 9-11 s queue wait, 60,000 rows; the simulator in its own process
           enforcing both caps with 429s; complete(max_workers=10_000, max_pending=10_000, qps=1000).
           Steady-state rows/s against Little's bound min(1,000, 10,000 / 10 s), the server's peak QPS
           and pending, 429s by code, client CPU per row (all threads), client peak RSS.
  ceiling-bare  the same server carried by the bare aiohttp anchor below, paced at 97 % of the cap by a sleep
           loop: what this machine allows a client at all, in the same run.
  zero     zero latency, 256 in flight, checkpoint on: complete() against a bare aiohttp client (one
           session, orjson bodies, fixed headers, a semaphore of 256) in the same run, caps off.
  sync     a sync openai.OpenAI at 64 workers: the engine over client_transport (the client= thread pool)
           against the hand-written ThreadPoolExecutor loop over the same client, zero latency.
Steady state = answers per second, as the server counted them, from the end of the first wave (every
slot has turned over once) to the start of the last (fewer rows than slots are left).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures as cf
import os
import sys
import tempfile
import threading
import time

import orjson
import pandas as pd

import batchframe
from batchframe.simulator import Simulator

sys.path.insert(0, os.path.dirname(__file__))
from bench import MODEL, PeakRSS, frame  # noqa: E402


class Sampler:
    """Polls the server's counters every 0.5 s."""

    def __init__(self, sim) -> None:
        self.sim, self.samples, self._stop = sim, [], threading.Event()
        self._t = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            s = self.sim.stats()
            self.samples.append((time.perf_counter(), s["successes"], s["pending"]))

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    def steady(self, n: int, wave: int) -> tuple[float, list[int]]:
        first = next(i for i, (_, ok, _) in enumerate(self.samples) if ok >= wave)
        last = next(i for i, (_, ok, _) in enumerate(self.samples) if ok >= n - wave)
        (t1, ok1, _), (t2, ok2, _) = self.samples[first], self.samples[last]
        return (ok2 - ok1) / (t2 - t1), [p for _, _, p in self.samples[first:last + 1]]


def section_ceiling(args, tmp: str) -> list[tuple]:
    n, pending, qps, wait = args.rows, args.pending, args.qps, 10.0
    bound = min(qps, pending / wait)
    with Simulator.spawn(max_qps=qps, max_pending=pending, latency="fixed", latency_s=wait,
                         latency_jitter_s=1.0) as sim:
        df = frame(n, "c")
        with PeakRSS() as rss, Sampler(sim) as sampler:
            t, cpu = time.perf_counter(), time.process_time()
            out = batchframe.complete(df, "text", model=MODEL, base_url=sim.base_url, max_workers=pending,
                                      max_pending=pending, qps=qps, checkpoint=os.path.join(tmp, "ceiling"),
                                      progress=False)
            wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        stats = sim.stats()
    assert (out["status"] == "ok").all(), out["status"].value_counts()
    steady, pend = sampler.steady(n, pending)
    codes = {c: k for c, k in stats["by_code"].items()}
    rejected = stats["by_status"].get(429, 0)
    return [(f"ceiling: {pending:,} pending, {qps:,} QPS, 9-11 s wait, {n:,} rows: steady state",
             f"{steady:,.0f} rows/s", f"bound {bound:,.0f} rows/s", f"{steady / bound * 100:.1f}% of bound"),
            ("  server: peak QPS (admitted, any 1 s) / peak pending", f"{stats['peak_qps']:,} QPS",
             f"peak pending {stats['peak_pending']:,} (steady {min(pend):,}-{max(pend):,})", ""),
            ("  server: 429s", f"{rejected:,}", f"by code {codes}", f"{stats['requests']:,} requests"),
            ("  client CPU per row / peak RSS", f"{cpu / n * 1e3:.2f} ms", f"peak RSS {rss.peak / 2**20:,.0f} MiB",
             f"overall {n / wall:,.0f} rows/s, wall {wall:.0f} s")]


def bare_aiohttp(base_url: str, texts: list[str], in_flight: int, rate: float | None = None) -> None:
    """The anchor: a bare aiohttp session posting orjson bodies with fixed headers; with ``rate``, sends
    paced by a plain sleep loop, and a 429 sent again after 1 s."""
    import aiohttp

    async def main() -> None:
        url = base_url + "/chat/completions"
        headers = {"Content-Type": "application/json", "Authorization": "Bearer x"}
        gate = asyncio.Semaphore(in_flight)
        timeout = aiohttp.ClientTimeout(total=3600)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight), headers=headers,
                                         timeout=timeout) as s:
            async def one(text: str) -> None:
                body = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": text}]})
                while True:
                    async with s.post(url, data=body) as resp:
                        raw = await resp.read()
                    if resp.status != 429:
                        break
                    await asyncio.sleep(1.0)
                assert orjson.loads(raw)["choices"][0]["message"]["content"]

            async def gated(text: str) -> None:
                try:
                    await one(text)
                finally:
                    gate.release()

            tasks, loop = [], asyncio.get_running_loop()
            start = loop.time()
            for i, text in enumerate(texts):
                await gate.acquire()
                if rate is not None and (due := start + i / rate - loop.time()) > 0:
                    await asyncio.sleep(due)
                tasks.append(asyncio.ensure_future(gated(text)))
            await asyncio.gather(*tasks)

    asyncio.run(main())


def section_ceiling_bare(args, tmp: str) -> list[tuple]:
    """The same ceiling, carried by the bare aiohttp anchor paced at 97 % of the cap: what the machine allows."""
    n, pending, qps, wait = args.bare_rows, args.pending, args.qps, 10.0
    with Simulator.spawn(max_qps=qps, max_pending=pending, latency="fixed", latency_s=wait,
                         latency_jitter_s=1.0) as sim:
        texts = list(frame(n, "cb")["text"])
        with PeakRSS() as rss, Sampler(sim) as sampler:
            t, cpu = time.perf_counter(), time.process_time()
            bare_aiohttp(sim.base_url, texts, pending, rate=qps * 0.97)
            wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        stats = sim.stats()
    steady, _ = sampler.steady(n, pending)
    return [(f"  anchor: bare aiohttp paced at {qps * 0.97:,.0f}/s, same server, {n:,} rows: steady state",
             f"{steady:,.0f} rows/s", f"CPU {cpu / n * 1e3:.2f} ms/row, peak RSS {rss.peak / 2**20:,.0f} MiB",
             f"server peak QPS {stats['peak_qps']:,}, 429s {stats['by_status'].get(429, 0):,}")]


def section_zero(args, tmp: str) -> list[tuple]:
    n, best = args.zero_rows, {}
    with Simulator.spawn(max_qps=None, max_pending=None) as sim:
        bare_aiohttp(sim.base_url, list(frame(500, "warm")["text"]), 256)  # first-use costs out of the way
        batchframe.complete(frame(500, "warm"), "text", model=MODEL, base_url=sim.base_url, progress=False)
        for rep in range(args.rounds):  # alternate: the machine's noise spreads over both
            for name in ("bare aiohttp", "batchframe"):
                df = frame(n, f"{name[0]}{rep}")
                t, cpu = time.perf_counter(), time.process_time()
                if name == "batchframe":
                    out = batchframe.complete(df, "text", model=MODEL, base_url=sim.base_url, max_workers=256,
                                              checkpoint=os.path.join(tmp, f"zero{rep}"), progress=False)
                    assert (out["status"] == "ok").all()
                else:
                    bare_aiohttp(sim.base_url, list(df["text"]), 256)
                wall, cpu = time.perf_counter() - t, time.process_time() - cpu
                if name not in best or n / wall > best[name][0]:
                    best[name] = (n / wall, cpu / n * 1e3)
    (ours, our_cpu), (bare, bare_cpu) = best["batchframe"], best["bare aiohttp"]
    return [(f"zero latency, 256 in flight, checkpoint on, {n:,} rows (best of {args.rounds})",
             f"{ours:,.0f} rows/s, {our_cpu:.2f} ms CPU/row", f"bare aiohttp {bare:,.0f} rows/s, "
             f"{bare_cpu:.2f} ms CPU/row", f"{ours / bare:.2f}x")]


def section_sync(args, tmp: str) -> list[tuple]:
    import openai

    from batchframe.engine.clients import client_transport
    from batchframe.engine.dispatcher import Engine, EngineConfig
    from batchframe.records import Request

    n, workers, best = args.sync_rows, 64, {}
    with Simulator.spawn(max_qps=None, max_pending=None) as sim:
        client = openai.OpenAI(base_url=sim.base_url, api_key="x", max_retries=0, timeout=3600)

        def hand(texts):  # what people write by hand: a pool over one client, the SDK's parsed objects
            def one(text):
                r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}])
                return r.choices[0].message.content

            with cf.ThreadPoolExecutor(workers) as pool:
                list(pool.map(one, texts))

        def pool(texts):
            engine = Engine(client_transport(client, timeout=3600, max_workers=workers),
                            EngineConfig(max_workers=workers))
            requests = (Request(f"r{i}", {"model": MODEL, "messages": [{"role": "user", "content": t}]})
                        for i, t in enumerate(texts))
            assert sum(r.status == "ok" for r in engine.run(requests)) == len(texts)

        hand(list(frame(300, "warm")["text"]))
        pool(list(frame(300, "warm2")["text"]))
        for rep in range(args.rounds):
            for name, way in (("hand loop", hand), ("client= pool", pool)):
                texts = list(frame(n, f"{name[0]}{rep}")["text"])
                t, cpu = time.perf_counter(), time.process_time()
                way(texts)
                wall, cpu = time.perf_counter() - t, time.process_time() - cpu
                if name not in best or n / wall > best[name][0]:
                    best[name] = (n / wall, cpu / n * 1e3)
    (ours, our_cpu), (hand_rate, hand_cpu) = best["client= pool"], best["hand loop"]
    return [(f"sync openai.OpenAI, {workers} workers, zero latency, {n:,} rows (best of {args.rounds})",
             f"client= pool {ours:,.0f} rows/s, {our_cpu:.2f} ms CPU/row",
             f"hand ThreadPoolExecutor loop {hand_rate:,.0f} rows/s, {hand_cpu:.2f} ms CPU/row",
             f"{ours / hand_rate:.2f}x")]


SECTIONS = {"ceiling": section_ceiling, "ceiling-bare": section_ceiling_bare, "zero": section_zero,
            "sync": section_sync}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    p.add_argument("--rows", type=int, default=60_000, help="rows of the ceiling case")
    p.add_argument("--qps", type=int, default=1000, help="the ceiling's QPS cap (client and server)")
    p.add_argument("--pending", type=int, default=10_000, help="the ceiling's pending cap (client and server)")
    p.add_argument("--bare-rows", type=int, default=40_000, help="rows of the ceiling's bare aiohttp anchor")
    p.add_argument("--zero-rows", type=int, default=10_000)
    p.add_argument("--sync-rows", type=int, default=3_000)
    p.add_argument("--rounds", type=int, default=2, help="alternated rounds of zero and sync (best kept)")
    args = p.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, load avg {os.getloadavg()[0]:.1f}, "
          f"python {sys.version.split()[0]}, pandas {pd.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            for row in SECTIONS[name](args, tmp):
                print(" | ".join(str(c) for c in row), flush=True)


if __name__ == "__main__":
    main()
