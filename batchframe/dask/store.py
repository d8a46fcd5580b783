"""Per-partition checkpoints under one root, on a local path or any fsspec URL (batchframe.dask).

Layout of a root::

    <root>/_batchframe_dask.json     which job wrote it (npartitions, model, endpoint); no key
    <root>/part-<i>/                 partition i's checkpoint: an ordinary batchframe checkpoint

``pd.read_parquet(root)`` reads every partition's finished rows at once (pyarrow skips names starting
with ``_`` and ``.``); ``batchframe.load_checkpoint(f"{root}/part-3")`` reads one partition.

Local roots (a plain path or ``file://``, on a shared filesystem when the workers are on several
machines) are used in place: the partition's ``CheckpointStore`` journals every answer before it
counts, holds the directory's lock, and so survives ``kill -9`` of the worker row by row.

Other fsspec roots (``s3://``, ``gs://``, ``abfs://``, ``memory://``, ...) have no append, no rename
and no lock, so the store is not run on them directly: the partition's finished Parquet parts are
downloaded into a local temporary directory on the worker, the run checkpoints there as usual, and at
the end of the partition (finished, failed, or stopped) every part it created or changed is uploaded
as a whole object, the metadata and the superseded-parts manifest last. No remote name is ever
deleted: a reader may have listed it (parts merged by compaction stay, listed in the manifest, which
batchframe's readers follow; a crash before the manifest is up leaves duplicates that the row
sequence numbers resolve). A finished partition is therefore never re-sent,
but a worker killed mid-partition loses that partition's answers since it started (they are re-sent).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

from ..exceptions import CheckpointError

ROOT_META = "_batchframe_dask.json"
PART_DIR = "part-{}"
_CKPT_META = "_batchframe.json"  # the checkpoint's own metadata file (see checkpoint/files.META)
_SUPERSEDED = "_superseded.json"  # the checkpoint's superseded-parts manifest (checkpoint/files.MANIFEST)


def _fs(root: str) -> tuple[Any, str]:
    import fsspec.core

    return fsspec.core.url_to_fs(root)


def is_local(root: str) -> bool:
    fs, _ = _fs(root)
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocol or "local" in protocol


def partition_dir(root: str, index: int) -> str:
    """The checkpoint directory of partition ``index`` (a local path for local roots)."""
    _, path = _fs(root)
    if is_local(root):
        return os.path.join(path, PART_DIR.format(index))
    return posixpath.join(path.rstrip("/"), PART_DIR.format(index))


def check_root(root: str, npartitions: int, log: Any) -> None:
    """On the client, before the graph is built: refuse a root that holds someone else's files,
    and warn when it was written with another partitioning (resume matches rows per partition)."""
    fs, path = _fs(root)
    if fs.isfile(path):
        raise CheckpointError(f"checkpoint root {root} is a file; checkpoint= must name a directory")
    if not fs.isdir(path):
        return
    names = [posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False)]
    if ROOT_META in names:
        try:
            meta = json.loads(fs.cat_file(posixpath.join(path, ROOT_META)))
        except (OSError, ValueError):  # unreadable metadata is rewritten by the next partition
            meta = {}
        before = meta.get("npartitions")
        if before is not None and before != npartitions:
            log.warning("checkpoint root %s was written by a frame of %s partitions; this one has %s. "
                        "Resume matches rows within each partition: rows that moved to another "
                        "partition are sent again. Keep the partitioning to resume fully.",
                        root, before, npartitions)
        return
    foreign = [n for n in names if not (n.startswith(("part-", "_", ".")))]
    if foreign:
        raise CheckpointError(
            f"{root} is not empty and is not a batchframe Dask checkpoint root (no {ROOT_META}; "
            f"found e.g. {foreign[:3]}); refusing to write into it. Point checkpoint= at a new or "
            f"empty directory.")


def write_root_meta(root: str, meta: dict) -> None:
    """Whole-object write of the root's metadata (every partition writes the same content)."""
    fs, path = _fs(root)
    fs.makedirs(path, exist_ok=True)
    data = json.dumps(meta, sort_keys=True).encode()
    if is_local(root):
        # atomic: written aside, renamed into place (partitions write it concurrently)
        target = os.path.join(path, ROOT_META)
        tmp = os.path.join(path, f".{ROOT_META}.{os.getpid()}.{id(data)}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    else:
        fs.pipe_file(posixpath.join(path, ROOT_META), data)


@contextlib.contextmanager
def partition_checkpoint(root: str, index: int) -> Iterator[str]:
    """Yield a local checkpoint directory for partition ``index``; for a non-local root it is staged
    from and published back to ``<root>/part-<index>`` (see the module docstring)."""
    if is_local(root):
        yield partition_dir(root, index)
        return
    fs, _ = _fs(root)
    remote = partition_dir(root, index)
    tmp = tempfile.mkdtemp(prefix=f"batchframe-part-{index}-")
    local = os.path.join(tmp, PART_DIR.format(index))
    os.makedirs(local)
    try:
        before = _download(fs, remote, local)
        try:
            yield local
        finally:
            _publish(fs, remote, local, before)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _ours(name: str) -> bool:
    return name in (_CKPT_META, _SUPERSEDED) or (name.startswith("part-") and name.endswith(".parquet"))


def _stamp(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def _download(fs: Any, remote: str, local: str) -> dict[str, tuple[int, int]]:
    """The partition's files, staged locally: name -> (size, mtime) as downloaded."""
    if not fs.isdir(remote):
        return {}
    names = {}
    for p in fs.ls(remote, detail=False):
        name = posixpath.basename(p.rstrip("/"))
        if _ours(name):
            fs.get_file(p, os.path.join(local, name))
            names[name] = _stamp(os.path.join(local, name))
    return names


def _publish(fs: Any, remote: str, local: str, before: dict[str, tuple[int, int]]) -> None:
    """Upload what is new or changed, whole objects, parts first and the metadata and the superseded
    manifest last; never delete a remote name (a reader may have listed it: compaction leaves merged
    parts in place and the manifest tells batchframe's readers to skip them, see
    ``checkpoint.superseded``)."""
    after = {n for n in os.listdir(local) if _ours(n)}
    fs.makedirs(remote, exist_ok=True)
    changed = [n for n in after if before.get(n) != _stamp(os.path.join(local, n))]
    last = [n for n in (_CKPT_META, _SUPERSEDED) if n in changed]
    for name in sorted(n for n in changed if n not in last) + last:
        fs.put_file(os.path.join(local, name), posixpath.join(remote, name))  # whole object
