"""Opening a checkpoint after any stop (a clean close, Ctrl-C, ``kill -9``, a full disk).

``lock()`` takes the one writer's ``flock`` (the holder's pid written inside, for the error a second
run gets). Then ``recover()``, under the lock: leftover temp files are removed; every journal becomes
its part, merged with whatever that part already holds (journal ``<x>`` and part ``<x>`` side by side:
a flush or a stub's reuse was cut short; duplicates of a seq are dropped); unreadable parts are set
aside, their names kept as stubs; and every part is sorted, by its footer, into live, superseded and
stubs: the manifest counts only as far as the footers confirm it (see ``superseded.Retired``).
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import socket

import pyarrow as pa
import pyarrow.compute as pc

from . import files as F
from . import superseded as S
from .meta import fsync_dir
from ..exceptions import CheckpointLocked


@dataclasses.dataclass(frozen=True)
class Found:
    retired: S.Retired        # superseded entries, stubs, free stubs; ``live``: the live parts
    ids: dict                 # live part -> its footer id
    next_seq: int             # above every seq stored (superseded parts included)
    any_part: bool            # False: no part file at all (a new checkpoint)
    rewrite_manifest: bool    # the manifest on disk says more than the files confirm


def lock(path: str) -> int:
    name = os.path.join(path, F.LOCK)
    fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 256).decode("utf-8", "replace").strip() or "pid unknown"
        os.close(fd)
        raise CheckpointLocked(f"checkpoint {path} is being written by another run ({holder}); wait for "
                               f"it to finish or stop it, or use another checkpoint directory") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return fd


def unlock(fd: int | None) -> None:
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def recover(path: str, *, fsync: bool) -> Found:
    parts, journals, temps = F.scan(path)
    for name in temps:  # we hold the lock: these are a dead writer's
        remove(os.path.join(path, name))
    manifest = S.read(path)
    info: dict[str, F.PartInfo] = {}
    aside: list[str] = []

    def set_aside(name: str, exc: Exception) -> None:
        aside.append(name)
        pid = F.quarantine(path, name, str(exc), fsync=fsync)
        if pid is not None:
            info[name] = F.PartInfo(pid, True, -1)
        else:
            info.pop(name, None)

    for name in parts:
        try:
            info[name] = F.part_info(os.path.join(path, name))
        except (F.CorruptPart, FileNotFoundError) as exc:
            set_aside(name, exc)
    for name in journals:  # journal <x> becomes part <x>, merged with what part <x> holds
        part = F.part_of_journal(name)
        table = F.journal_table(os.path.join(path, name))
        if part in info and not info[part].stub:
            try:
                published = F.read_part(os.path.join(path, part), F.schema().names)
                table = F.unique_seq(pa.concat_tables([published, table]))
            except (F.CorruptPart, FileNotFoundError) as exc:
                set_aside(part, exc)
        if table.num_rows:
            pid = F.write_part(table, path, part, fsync=fsync)
            info[part] = F.PartInfo(pid, False, pc.max(table["seq"]).as_py())
        remove(os.path.join(path, name))
    if journals and fsync:
        fsync_dir(path)
    retired = S.Retired(manifest, info)
    for name in aside:
        if name in info:
            retired.stubbed(name)  # known from now on (free to take at the next open)
    return Found(retired, {name: info[name].id for name in retired.live},
                 max((i.max_seq for i in info.values()), default=-1) + 1, bool(info),
                 retired.changed or bool(aside))


def remove(path: str) -> None:
    """Remove a file; one already gone is fine."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
