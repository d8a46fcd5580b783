"""Chunks: the input files of a job, built on disk line by line, and the maps from their lines to rows.

A chunk holds at most ``max_lines`` lines and ``max_bytes`` bytes, one line per distinct request
(``custom_id`` = the request hash, so unique per file), all of one model and one thinking mode (a
run sends one model with one set of parameters, so every chunk of a run is of one group; the group
is checked all the same). ``OpenChunk`` writes its lines straight to ``chunk-<n>.jsonl`` (memory:
its rid -> keys map only) and, when closed, the map as Parquet beside it. ``RidIndex`` remembers
which closed chunk holds a request (12 bytes a request), so a row repeating a prompt already
submitted joins that chunk's line instead of making a second one.
"""

from __future__ import annotations

import os
import time
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from ..checkpoint.hashes import hashes
from .record import chunk_path, map_files

LINE_MAX_BYTES = 6 * 2 ** 20  # DashScope: each line at most 6 MB
CHAINS = ".chains.json"       # a repair chunk's sidecar: follow-up rid -> the answer it repairs


def line_bytes(rid: str, url: str, body: Any) -> bytes:
    return orjson.dumps({"custom_id": rid, "method": "POST", "url": url, "body": body}) + b"\n"


def group_of(body: Any) -> tuple:
    """What must be the same for every line of a file: the model and the thinking mode."""
    return body.get("model"), body.get("enable_thinking")


class OpenChunk:
    def __init__(self, dirpath: str, n: int, *, attempt: int = 1, parent: int | None = None,
                 repair: int = 0) -> None:
        self.dirpath, self.n, self.attempt, self.parent = dirpath, n, attempt, parent
        self.repair = repair  # a repair round's chunk (its round, from 1): its lines are follow-up turns
        self.path = chunk_path(dirpath, n)
        self._fh = open(self.path, "wb", buffering=1 << 20)
        self.lines = self.bytes = 0
        self.keys: dict[str, list[str]] = {}
        self.reserve = 0.0
        self.group: tuple | None = None

    def fits(self, size: int, max_lines: int, max_bytes: int, group: tuple) -> bool:
        return (self.lines < max_lines and self.bytes + size <= max_bytes
                and (self.group is None or self.group == group))

    def add(self, rid: str, keys: list[str], data: bytes, worst: float, group: tuple) -> None:
        self._fh.write(data)
        self.lines += 1
        self.bytes += len(data)
        self.keys[rid] = keys
        self.reserve += worst
        self.group = group

    def close(self) -> dict:
        """Flush and fsync the file, write the map: the ``chunk`` event to record (the commit)."""
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        write_map(chunk_path(self.dirpath, self.n, ".keys.parquet"), self.keys.items())
        return {"e": "chunk", "n": self.n, "lines": self.lines, "bytes": self.bytes,
                "rows": sum(len(k) for k in self.keys.values()), "attempt": self.attempt,
                "parent": self.parent, "reserve": self.reserve, "recorded_at": time.time(),
                **({"repair": self.repair} if self.repair else {})}

    def discard(self) -> None:
        self._fh.close()
        for path in (self.path, chunk_path(self.dirpath, self.n, ".keys.parquet"),
                     chunk_path(self.dirpath, self.n, CHAINS)):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass


def write_map(path: str, items: Iterable[tuple[str, list[str]]]) -> int:
    """rid -> keys as a Parquet file (sorted by rid), published atomically. Returns the rows."""
    rids: list[str] = []
    keys: list[str] = []
    for rid, ks in items:
        rids.extend([rid] * len(ks))
        keys.extend(ks)
    table = pa.table({"rid": pa.array(rids, pa.string()), "key": pa.array(keys, pa.string())})
    if table.num_rows:
        table = table.sort_by("rid")
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return len(keys)


def read_pairs(dirpath: str, n: int) -> tuple[list[str], list[str]]:
    """Every (rid, key) of chunk ``n``, from all its maps."""
    tables = [pq.read_table(p) for p in map_files(dirpath, n)]
    if not tables:
        return [], []
    table = pa.concat_tables(tables)
    return table["rid"].to_pylist(), table["key"].to_pylist()


def read_map(dirpath: str, n: int) -> dict[str, list[str]]:
    """rid -> its row keys (each key once, in map order) for chunk ``n``."""
    out: dict[str, list[str]] = {}
    for rid, key in zip(*read_pairs(dirpath, n)):
        keys = out.setdefault(rid, [])
        if key not in keys:
            keys.append(key)
    return out


def write_chains(dirpath: str, n: int, chains: dict[str, dict]) -> None:
    """A repair chunk's sidecar (follow-up rid -> the answer it repairs and its cost), published
    atomically before the chunk is recorded."""
    _publish(chunk_path(dirpath, n, CHAINS), orjson.dumps(chains, option=orjson.OPT_SERIALIZE_NUMPY))


def read_chains(dirpath: str, n: int) -> dict[str, dict]:
    try:
        with open(chunk_path(dirpath, n, CHAINS), "rb") as f:
            return orjson.loads(f.read())
    except FileNotFoundError:
        return {}


def _publish(path: str, data: bytes) -> None:
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def chunk_lines(path: str) -> Iterator[tuple[str, bytes]]:
    """(custom_id, raw line) of a chunk's input file, in order."""
    with open(path, "rb") as f:
        for raw in f:
            if raw.strip():
                yield orjson.loads(raw)["custom_id"], raw


class RidIndex:
    """Request hash -> the chunk holding its line: sorted runs of 64-bit hashes with their chunk
    numbers, merged as they grow (a lookup searches a handful)."""

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        return sum(len(v) for v, _ in self._runs)

    def add(self, rids: Sequence[str], n: int) -> None:
        if not len(rids):
            return
        h = hashes(list(rids))
        order = np.argsort(h, kind="stable")
        self._runs.append((h[order], np.full(len(h), n, dtype=np.int32)))
        runs = self._runs
        while len(runs) > 1 and 2 * len(runs[-1][0]) >= len(runs[-2][0]):
            (v2, c2), (v1, c1) = runs.pop(), runs.pop()
            values, chunks = np.concatenate([v1, v2]), np.concatenate([c1, c2])
            order = np.argsort(values, kind="stable")
            runs.append((values[order], chunks[order]))

    def lookup(self, rids: Sequence[str]) -> np.ndarray:
        """Per rid: the chunk holding it, or -1 (a 64-bit collision is harmless: see ``merge``)."""
        out = np.full(len(rids), -1, dtype=np.int64)
        if not self._runs or not len(rids):
            return out
        h = hashes(list(rids))
        for values, chunks in self._runs:
            at = np.minimum(np.searchsorted(values, h), len(values) - 1)
            hit = values[at] == h
            out[hit] = chunks[at[hit]]
        return out
