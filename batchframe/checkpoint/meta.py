"""The checkpoint's metadata file, ``_batchframe.json``: format version, library version, created_at
and the caller's ``meta`` mapping (model, base_url, params, prices, ...). Never an API key."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import re
from typing import Any, Mapping

import orjson

from ..exceptions import CheckpointError

FORMAT_VERSION = 1
META = "_batchframe.json"


def library_version() -> str:
    try:
        return importlib.metadata.version("batchframe")
    except importlib.metadata.PackageNotFoundError:
        import sys

        return str(getattr(sys.modules.get("batchframe"), "__version__", "unknown"))


def fsync_dir(dirpath: str) -> None:
    fd = os.open(dirpath, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_KEYLIKE = re.compile(r"sk-[A-Za-z0-9_\-]{6,}|Bearer\s+\S{6,}", re.IGNORECASE)
_SECRET_NAMES = {"api_key", "apikey", "api-key", "authorization", "password", "secret", "access_token"}


def check_meta(meta: Mapping[str, Any]) -> bytes:
    """The metadata mapping as JSON, refusing anything that looks like an API key (never echoed)."""
    def walk(obj: Any, where: str) -> None:
        if isinstance(obj, str):
            if _KEYLIKE.search(obj):
                raise CheckpointError(f"refusing to store meta{where} in the checkpoint metadata: "
                                      f"the value looks like an API key")
        elif isinstance(obj, Mapping):
            for k, v in obj.items():
                if str(k).lower() in _SECRET_NAMES and v:
                    raise CheckpointError(f"refusing to store meta{where}[{k!r}] in the checkpoint "
                                          f"metadata: secrets never go into a checkpoint")
                walk(v, f"{where}[{k!r}]")
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(v, f"{where}[{i}]")
    walk(meta, "")
    try:
        return orjson.dumps(dict(meta), option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    except TypeError as exc:
        raise CheckpointError(f"checkpoint meta must be JSON-serializable: {exc}") from None


def read_meta(dirpath: str) -> dict | None:
    try:
        with open(os.path.join(dirpath, META), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    try:
        obj = orjson.loads(data)
        if not isinstance(obj, dict):
            raise ValueError("not an object")
    except ValueError:
        raise CheckpointError(f"{os.path.join(dirpath, META)} is unreadable (not batchframe metadata). "
                              f"Use a new checkpoint directory, or delete {dirpath} to start over.") from None
    return obj


def check_version(dirpath: str, meta: Mapping[str, Any]) -> None:
    version = meta.get("format_version")
    if version == FORMAT_VERSION:
        return
    by = meta.get("library_version", "an unknown version")
    hint = ("upgrade batchframe to read it, or " if isinstance(version, int) and version > FORMAT_VERSION
            else "")
    raise CheckpointError(
        f"checkpoint {dirpath} was written by batchframe {by} in checkpoint format {version!r}; this "
        f"batchframe ({library_version()}) reads format {FORMAT_VERSION}. To go on, {hint}point "
        f"checkpoint= at a new directory, or delete {dirpath} to start over (its rows will be re-run).")


def write_meta(dirpath: str, meta: Mapping[str, Any], *, fsync: bool) -> None:
    data = orjson.dumps(dict(meta), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
                        | orjson.OPT_SERIALIZE_NUMPY)
    tmp = os.path.join(dirpath, f".{META}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data + b"\n")
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, os.path.join(dirpath, META))
    if fsync:
        fsync_dir(dirpath)


def stamp(dirpath: str, stored: Mapping[str, Any] | None, meta: Mapping[str, Any], *, fsync: bool) -> None:
    """Open a checkpoint for writing: its version checked (``stored``: the metadata found, None for a
    new one), then the metadata written again with ``meta`` merged in (this run's keys win)."""
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    stored = stored if stored is not None else {"format_version": FORMAT_VERSION, "created_at": now}
    check_version(dirpath, stored)
    before = stored.get("meta")
    write_meta(dirpath, {"format_version": FORMAT_VERSION, "library": "batchframe",
                         "library_version": library_version(), "created_at": stored.get("created_at"),
                         "updated_at": now, "meta": {**(before if isinstance(before, dict) else {}), **meta}},
                fsync=fsync)
