"""Superseded parts: how compaction retires parts without removing a file a reader may have listed.

Readers we do not control (``pd.read_parquet(dir)``, Dask, DuckDB) list the directory, then open what
they listed, with no lock. Deleting or renaming a part between the two is a ``FileNotFoundError`` for
them. So once a part's name is in the directory it stays there, and its content only ever changes by
``os.replace`` with other valid content:

1. compaction publishes the merged part under a name of its own (a new one, or a free stub's);
2. only then does it record the parts it merged as superseded in ``_superseded.json``: their part
   ids (each part's footer holds a random id), the id of the part that holds their rows, and when.
   They stay in place, whole: meanwhile a raw read shows their rows twice (DESIGN.md allows a raw
   read to show superseded attempts; ``load_checkpoint`` resolves them by seq);
3. ``GRACE_S`` later the writer bumps the manifest's ``generation``, then replaces each of them with
   an empty *stub* of the fixed schema (never deletes it);
4. the stubs' names are taken for later journals and parts (journal ``<x>`` becomes part ``<x>``,
   replacing stub ``<x>``; crash recovery merges journal ``<x>`` with whatever part ``<x>`` holds, and
   a stub holds nothing), so the number of files stays bounded.

What a raw reader gets: never a ``FileNotFoundError``; every current row if it opens what it listed
within ``GRACE_S`` (a stub only replaces content whose rows were published under another name at
least ``GRACE_S`` earlier). A reader slower than that may miss rows, never get an error.

batchframe's own readers (``read.read_rows``: load_checkpoint, checkpoint_summary, resume) read the
manifest, then list, then open each part once: a part whose footer id the manifest names as
superseded is not read, provided the part holding its rows (or its own successor, and so on) was
read, else it is read after all; when the generation changed meanwhile, they read again. A stale,
missing or damaged manifest costs at most reading rows twice (resolved by seq), never a lost row.

A stub found at open is taken for new parts only when the manifest lists it, and so is one made from a
name this store created or took itself. (batchframe.dask stages a remote checkpoint, manifest
included, in a local directory and uploads every name it created or changed, the manifest last.)
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterable, Mapping

import orjson

from . import files as F

GRACE_S = 600.0  # seconds a superseded part stays whole after compaction replaced it


@dataclasses.dataclass(frozen=True)
class Entry:
    """A part compaction merged away: its id and name, the id of the part that holds its rows, when."""

    id: str | None  # None: a part written before parts had ids (never skipped by readers)
    name: str
    by: str
    at: float  # wall-clock seconds


@dataclasses.dataclass(frozen=True)
class Manifest:
    generation: int = 0
    entries: tuple[Entry, ...] = ()
    stubs: tuple[str, ...] = ()

    @property
    def by(self) -> dict[str, str]:
        """superseded part id -> the id of the part holding its rows (what readers may skip)."""
        return {e.id: e.by for e in self.entries if e.id is not None}


def read(dirpath: str) -> Manifest:
    """The manifest, or an empty one when there is none or it is unreadable (never an error)."""
    try:
        with open(os.path.join(dirpath, F.MANIFEST), "rb") as f:
            obj = orjson.loads(f.read())
        entries = tuple(Entry(e["id"], e["name"], e["by"], float(e["at"])) for e in obj["superseded"])
        return Manifest(int(obj["generation"]), entries, tuple(str(s) for s in obj["stubs"]))
    except FileNotFoundError:
        return Manifest()
    except (OSError, ValueError, TypeError, KeyError):
        return Manifest(-1)


def write(dirpath: str, manifest: Manifest, *, fsync: bool) -> None:
    data = orjson.dumps({"generation": manifest.generation,
                         "superseded": [dataclasses.asdict(e) for e in manifest.entries],
                         "stubs": list(manifest.stubs)}, option=orjson.OPT_INDENT_2)
    tmp = os.path.join(dirpath, f".{F.MANIFEST}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data + b"\n")
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, os.path.join(dirpath, F.MANIFEST))
    if fsync:
        F.fsync_dir(dirpath)


def uncovered(deferred: Mapping[str, str], by: Mapping[str, str], read_ids: Iterable[str]) -> list[str]:
    """Of the parts not read because superseded (``deferred``: id -> name), the names whose rows are
    in no part that was read: neither the part that replaced them, nor that one's successor, ..."""
    covered = set(read_ids)
    grown = True
    while grown:
        grown = False
        for pid in deferred:
            if pid not in covered and by.get(pid) in covered:
                covered.add(pid)
                grown = True
    return [name for pid, name in deferred.items() if pid not in covered]


class Retired:
    """The writer's view: superseded entries, known stubs, the stubs free to take, the generation."""

    def __init__(self, manifest: Manifest, info: Mapping[str, F.PartInfo]) -> None:
        """From the manifest as found at open and every part's footer (``info``: name -> PartInfo).
        Keeps only what the files confirm; ``live`` is then every other non-stub part."""
        self.generation = max(manifest.generation, 0)
        named = {e.name for e in manifest.entries}
        self.stubs = {n for n, i in info.items() if i.stub and (n in manifest.stubs or n in named)}
        self.free = sorted(self.stubs)
        # names whose content this store may change: the free stubs it found, the names it creates
        self.own = set(self.free)
        entries = {e.name: e for e in manifest.entries
                   if e.name in info and not info[e.name].stub and info[e.name].id == e.id}
        present = {i.id for n, i in info.items() if not i.stub and n not in entries}
        kept: dict[str, Entry] = {}
        grown = True
        while grown:  # an entry stands while the part holding its rows (or a successor) is there
            grown = False
            for name, e in entries.items():
                if name not in kept and e.by in present | {k.id for k in kept.values()}:
                    kept[name] = e
                    grown = True
        self.entries = sorted(kept.values(), key=lambda e: e.at)
        self.live = sorted(n for n, i in info.items() if not i.stub and n not in kept)
        self.changed = (self.entries != sorted(manifest.entries, key=lambda e: e.at)
                        or self.stubs != set(manifest.stubs))

    def manifest(self) -> Manifest:
        return Manifest(self.generation, tuple(self.entries), tuple(sorted(self.stubs)))

    def supersede(self, parts: Iterable[tuple[str, str | None]], by: str, at: float) -> None:
        self.entries += [Entry(pid, name, by, at) for name, pid in parts]

    def due(self, now: float, grace: float) -> list[Entry]:
        return [e for e in self.entries if now - e.at >= grace]

    def stubbed(self, name: str) -> None:
        """``name`` now holds a stub (replaced after its grace, or a corrupt part set aside)."""
        self.entries = [e for e in self.entries if e.name != name]
        self.stubs.add(name)
        if name in self.own and name not in self.free:
            self.free.append(name)

    def take(self) -> str | None:
        """A free stub's name for a journal or a merged part (still a stub until ``published``)."""
        return self.free.pop(0) if self.free else None

    def published(self, name: str) -> None:
        """``name`` now holds rows (a new name, or a stub's)."""
        self.own.add(name)
        self.stubs.discard(name)

    def give_back(self, name: str) -> None:
        """A name taken for a journal that never became a part: still a stub, free again."""
        if name in self.stubs and name not in self.free:
            self.free.insert(0, name)
