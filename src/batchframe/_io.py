"""Reading and writing the CLI's tables: CSV, TSV, JSONL and Parquet (a file or a directory)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .exceptions import ConfigError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
           ".pq": "parquet"}


def format_of(path: str | os.PathLike, given: str | None = None) -> str:
    if given:
        if given not in set(FORMATS.values()):
            raise ConfigError(f"unknown format {given!r}; use one of csv, tsv, jsonl, parquet")
        return given
    p = Path(path)
    if p.is_dir():
        exts = {f.suffix.lower() for f in p.iterdir() if f.is_file() and not f.name.startswith((".", "_"))}
        fmts = {FORMATS[e] for e in exts if e in FORMATS}
        if len(fmts) != 1:
            raise ConfigError(f"{path}: a directory must hold files of one known format "
                              f"(csv, tsv, jsonl, parquet); found {sorted(exts) or 'none'}")
        return fmts.pop()
    ext = p.suffix.lower()
    if ext not in FORMATS:
        raise ConfigError(f"{path}: unknown format {ext or '(no extension)'!r}; "
                          "use .csv, .tsv, .jsonl or .parquet, or pass --format")
    return FORMATS[ext]


def read_table(path: str | os.PathLike, fmt: str | None = None) -> pd.DataFrame:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{path}: no such file or directory")
    fmt = format_of(p, fmt)
    try:
        if fmt == "parquet":
            return pd.read_parquet(p)
        files = sorted(f for f in p.iterdir() if not f.name.startswith((".", "_"))) if p.is_dir() else [p]
        frames = [_read_one(f, fmt) for f in files]
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read as {fmt}: {exc}") from None


def _read_one(path: Path, fmt: str) -> pd.DataFrame:
    if fmt == "csv":
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    if fmt == "tsv":
        return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])
    return pd.read_json(path, lines=True)


def write_table(df: pd.DataFrame, path: str | os.PathLike, fmt: str | None = None) -> None:
    """Write atomically: a hidden temp file next to the target, then rename."""
    p = Path(path)
    fmt = format_of(p, fmt) if not p.is_dir() else fmt or "parquet"
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        if fmt == "parquet":
            df.to_parquet(tmp, index=False)
        elif fmt == "csv":
            df.to_csv(tmp, index=False)
        elif fmt == "tsv":
            df.to_csv(tmp, sep="\t", index=False)
        else:
            df.to_json(tmp, orient="records", lines=True, force_ascii=False)
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
