"""What ``batchframe run`` and ``batchframe estimate`` share: flags into ``complete()``'s options
(resolved by the one resolver, ``pipeline.options``), the input checks a file needs, the
checkpoint's input fingerprint, and the CLI's wording of option errors.

A checkpoint made by the CLI records its input in its metadata (``meta["input"]``: path, format,
columns and types, rows, and each file's size and mtime) and the outputs its runs wrote
(``meta["outputs"]``). A later run refuses a checkpoint whose recorded input has another path,
other columns or another row count (``--force-checkpoint`` overrides: reuse is still per request
hash, so nothing wrong is reused, but the checkpoint then mixes two inputs), and refuses to replace an
output that exists but is not one of the checkpoint's outputs (``--overwrite`` overrides).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..checkpoint.hashes import hashes
from ..checkpoint.meta import read_meta
from ..exceptions import ConfigError
from ..io.sources import Source, to_frame
from ..pipeline.options import RunOptions, resolve, resolve_offline
from ..rows.keys import index_keys
from ..rows.structured import _schema_name

# complete()'s option -> the flag that sets it (for error messages)
FLAGS = {"prompt_col": "--prompt-col", "template": "--template", "messages_col": "--messages-col",
         "system": "--system", "image_col": "--image-col", "model": "--model", "timeout": "--timeout",
         "max_workers": "--workers", "max_pending": "--max-pending", "qps": "--qps",
         "max_attempts": "--max-attempts", "max_cost": "--max-cost", "deadline_s": "--deadline",
         "base_url": "--base-url", "simulate": "--simulate", "local": "--local", "checkpoint": "--checkpoint",
         "retry_failed": "--retry-code", "prefix": "--prefix", "suffix": "--suffix",
         "extra_body": "--extra-body", "max_tokens": "--max-tokens", "temperature": "--temperature",
         "top_p": "--top-p", "seed": "--seed", "enable_thinking": "--enable-thinking"}
_PHRASES = [
    (re.compile(r"prices=\{'input': [^}]*\}"), "--prices IN OUT"),
    (re.compile(r"\(or pass api_key= in Python\)"), "(there is no --api-key: keys stay out of shell history)"),
    (re.compile(r"simulate=True"), "--simulate"), (re.compile(r"\bprices="), "--prices"),
    (re.compile(r"thinking_budget="), "--param thinking_budget=N"),
]


def cli_words(message: str) -> str:
    """An option error as a CLI user reads it: ``timeout=`` becomes ``--timeout``."""
    for pattern, flag in _PHRASES:
        message = pattern.sub(flag, message)
    return re.sub(r"\b(" + "|".join(FLAGS) + r")=(?=[\s,.;:)'\"]|$)",
                  lambda m: FLAGS[m.group(1)], message)


def request_params(args: argparse.Namespace) -> dict[str, Any]:
    params = dict(args.param)
    for name in ("temperature", "max_tokens", "top_p", "seed", "enable_thinking"):
        value = getattr(args, name)
        if value is not None:
            if name in params:
                raise ConfigError(f"{name} is given both as --{name.replace('_', '-')} and as --param")
            params[name] = value
    if args.schema:
        if "response_format" in params:
            raise ConfigError("give the answer's format once: --schema or --param response_format=...")
        try:
            schema = json.loads(Path(args.schema).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--schema {args.schema}: cannot read a JSON schema: {exc}") from None
        if not isinstance(schema, dict):
            raise ConfigError(f"--schema {args.schema}: expected a JSON object (a JSON schema)")
        name = _schema_name(Path(args.schema).name.split(".")[0])
        params["response_format"] = {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
    return params


def checkpoint_path(args: argparse.Namespace) -> str | None:
    if getattr(args, "no_checkpoint", False):
        return None
    if args.checkpoint:
        return args.checkpoint
    return f"{args.output}.checkpoint" if args.output else None


def options(args: argparse.Namespace, *, offline: bool = False) -> RunOptions:
    """The flags as ``complete()``'s options, resolved by the one resolver (``offline``: estimate)."""
    o: dict[str, Any] = dict(
        model=args.model, template=args.template, messages_col=args.messages_col, system=args.system,
        image_col=args.image_col, simulate=args.simulate, local=getattr(args, "local", False),
        base_url=args.base_url, extra_body=args.extra_body,
        prices={"input": args.prices[0], "output": args.prices[1]} if args.prices else None,
        retry_failed=True if args.retry_failed else (tuple(args.retry_code) or False),
        dedupe=not args.no_dedupe, parse=True if args.parse else None, checkpoint=checkpoint_path(args),
        prefix=getattr(args, "prefix", ""), suffix=getattr(args, "suffix", ""), **request_params(args))
    if offline:
        opts = resolve_offline(args.prompt_col, **o)
    else:
        opts = resolve(args.prompt_col, timeout=args.timeout, max_workers=args.workers,
                       max_pending=args.max_pending, qps=args.qps, max_attempts=args.max_attempts,
                       max_cost=args.max_cost, deadline_s=args.deadline, fsync=args.fsync,
                       progress=not (args.no_progress or args.quiet), **o)
    return dataclasses.replace(opts, rows=dataclasses.replace(opts.rows, id_col=args.id_col))


def check_source(source: Source, opts: RunOptions, batch_rows: int) -> None:
    """The file's own checks, on its schema (before anything is read or sent): a prompt column of
    text, an id column that exists and is unique and never empty."""
    rows = opts.rows
    if rows.prompt_col is not None and rows.prompt_col in source.columns:
        typ = source.schema.field(rows.prompt_col).type
        if not (pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_null(typ)):
            raise ConfigError(f"--prompt-col {rows.prompt_col!r} holds {typ} values, not text; use "
                              f"--template '{{{rows.prompt_col}}}' to send them as text")
    if rows.id_col is not None:
        if rows.id_col not in source.columns:
            raise ConfigError(f"--id-col {rows.id_col!r} is not a column; columns: {source.columns}")
        _check_ids(source, rows.id_col, max(batch_rows, 100_000))


def _check_ids(source: Source, id_col: str, batch_rows: int) -> None:
    """``--id-col`` must be unique and never empty (checked over the whole input before sending)."""
    seen: list[np.ndarray] = []
    start = 0
    for table in source.batches(batch_rows, [id_col]):
        col = table[id_col]
        if col.null_count:
            first = start + int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise ConfigError(f"--id-col {id_col!r} is empty in row {first}: every row needs an id")
        seen.append(hashes(index_keys(pd.Index(to_frame(table)[id_col]))))
        start += table.num_rows
    if not seen:
        return
    allh = np.concatenate(seen)
    uniq, counts = np.unique(allh, return_counts=True)
    if len(uniq) == len(allh):
        return
    dup_h = set(uniq[counts > 1].tolist())
    found: dict[str, int] = {}
    for table in source.batches(batch_rows, [id_col]):
        keys = index_keys(pd.Index(to_frame(table)[id_col]))
        for k, h in zip(keys, hashes(keys).tolist()):
            if h in dup_h:
                found[k] = found.get(k, 0) + 1
    dups = [k.split(":", 1)[1] for k, c in found.items() if c > 1][:3]
    if dups:
        raise ConfigError(f"--id-col {id_col!r} has duplicate values (e.g. {dups}); ids key the rows and "
                          "the checkpoint, so they must be unique: fix the column, or drop --id-col to key "
                          "rows by position")


def stored_meta(path: str | None) -> dict:
    """The ``meta`` a checkpoint holds ({} when there is none yet)."""
    if path is None or not os.path.isdir(path):
        return {}
    stored = read_meta(path)
    meta = stored.get("meta") if stored else None
    return meta if isinstance(meta, dict) else {}


def check_input(path: str, meta: dict, source: Source, force: bool) -> None:
    """Refuse a checkpoint made for another input (see the module doc)."""
    before = meta.get("input")
    if force or not isinstance(before, dict) or before.get("kind") == "pandas":
        return
    now = source.fingerprint()
    diffs = []
    if before.get("path") != now["path"]:
        diffs.append(f"input {before.get('path')}, not {now['path']}")
    if before.get("columns") != now["columns"]:
        diffs.append(f"columns {before.get('columns')}, not {now['columns']}")
    if before.get("rows") != now["rows"]:
        diffs.append(f"{before.get('rows')} rows, not {now['rows']}")
    if diffs:
        raise ConfigError(f"checkpoint {path} belongs to another input ({'; '.join(diffs)}): pass another "
                          "--checkpoint, or --force-checkpoint to reuse it anyway")
