"""The checkpoint's files: names, the fixed Parquet schema, journal lines and parts.

A checkpoint is a directory::

    _batchframe.json               metadata (see ``meta``)
    _superseded.json               parts compaction merged away, and empty stubs (see ``superseded``)
    _lock                          flock()ed by the one writer; holds the writer's pid
    part-<runid>-<n>.parquet       finished rows, fixed schema (see ``schema()``); the footer holds the
                                   part's random id (and whether it is an empty stub)
    _journal-<runid>-<n>.jsonl     rows written since the last part, one orjson line per row key;
                                   journal ``<runid>-<n>`` becomes part ``<runid>-<n>`` and nothing else
    .part-<...>.parquet.<pid>.tmp  a part being written, renamed into place when complete
    .corrupt-part-<...>.parquet    a part that could not be read, set aside (its rows are re-run)

Everything that is not a finished part starts with ``_`` or ``.``, which pyarrow's dataset reader skips,
so ``pd.read_parquet(directory)`` works at any instant, even right after a crash. A part's name, once
published, never leaves the directory: its content only changes by ``os.replace`` (see ``superseded``).

Everything here is stateless; ``_checkpoint.CheckpointStore`` holds the lock and decides when it runs.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import secrets
import shutil
import warnings
from typing import Any, NamedTuple, Sequence

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .meta import FORMAT_VERSION, META, fsync_dir  # noqa: F401  (re-exported)
from ..records import OUTPUT_COLUMNS, RESULT_COLUMNS, Result, output_arrow_types

log = logging.getLogger("batchframe")

LOCK = "_lock"
PART_PREFIX, PART_SUFFIX = "part-", ".parquet"
JOURNAL_PREFIX, JOURNAL_SUFFIX = "_journal-", ".jsonl"
CORRUPT_PREFIX = ".corrupt-"
MANIFEST = "_superseded.json"
PART_KEY = b"batchframe"  # a part's footer key: {"id": <32 hex>, "stub": bool}

# Columns read off the Result (the result columns, then what else a completion returns); the others
# ("cost") come from write()'s arguments.
STORED = tuple(n for n in RESULT_COLUMNS if n in Result.__dataclass_fields__) + OUTPUT_COLUMNS
EXTRA = tuple(n for n in RESULT_COLUMNS if n not in STORED)
# The order of a row tuple (in memory) and of a journal line's fields.
ROW_NAMES = ("key", "rid", "seq", "written_at") + STORED + EXTRA
BODY_NAMES = ("rid", "written_at") + STORED + EXTRA  # a journal line after its "key" and "seq"
REQUIRED = ("key", "rid", "seq")

_ARROW = {"string": pa.large_string(), "str": pa.large_string(), "Int64": pa.int64(),
          "int64": pa.int64(), "Float64": pa.float64(), "float64": pa.float64(),
          "boolean": pa.bool_(), "datetime64[us, UTC]": pa.timestamp("us", tz="UTC")}
_BASE_DTYPES = {"key": "string", "rid": "string", "seq": "int64", "written_at": "datetime64[us, UTC]"}


# Low-cardinality columns worth dictionary encoding; on the unique ones (key, rid, response) the
# attempt costs 3x the write time for nothing.
_DICTIONARY = ("status", "finish_reason", "error_code", "error")
ROW_GROUP = 131_072  # rows per row group: bounded pages, row groups decoded in parallel


class CorruptPart(Exception):
    """A part file that cannot be read (truncated, bad checksum, wrong schema)."""


class PartInfo(NamedTuple):
    """What a part's footer says: its id (None: written before parts had ids), stub or not, top seq."""

    id: str | None
    stub: bool
    max_seq: int


def _ident(kv: dict | None) -> tuple[str | None, bool]:
    raw = (kv or {}).get(PART_KEY)
    try:
        obj = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        obj = None
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return None, False
    return obj["id"], obj.get("stub") is True


@functools.cache
def schema() -> pa.Schema:
    """The fixed schema of every part, with pandas metadata so a raw read restores nullable dtypes."""
    import pandas as pd

    dtypes = {**_BASE_DTYPES, **RESULT_COLUMNS, **{name: "object" for name in OUTPUT_COLUMNS}}
    dtypes["repairs"] = "Int64"
    empty = pd.DataFrame({name: pd.Series([], dtype=d) for name, d in dtypes.items()})
    pandas_meta = pa.Schema.from_pandas(empty, preserve_index=False).metadata
    types = {**{name: _ARROW[d] for name, d in {**_BASE_DTYPES, **RESULT_COLUMNS}.items()}, **output_arrow_types()}
    return pa.schema([pa.field(name, types[name]) for name in dtypes], metadata=pandas_meta)


# ---- building tables ----------------------------------------------------------------------------

def _coerce(value: Any, typ: pa.DataType) -> Any:
    """One value made to fit ``typ``, or None: a bad value must never make a checkpoint unreadable."""
    if value is None:
        return None
    if pa.types.is_list(typ) or pa.types.is_struct(typ):  # a shape the type cannot hold: unknown
        try:
            pa.array([value], type=typ)
            return value
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            return None
    try:
        if pa.types.is_integer(typ) or pa.types.is_timestamp(typ):
            return int(value) if not isinstance(value, float) or math.isfinite(value) else None
        if pa.types.is_floating(typ):
            return float(value)
        if pa.types.is_boolean(typ):
            return bool(value)
        return value if isinstance(value, str) else str(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _array(values: Sequence[Any], typ: pa.DataType) -> pa.Array:
    try:
        return pa.array(values, type=typ)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return pa.array([_coerce(v, typ) for v in values], type=typ)


def table_from_rows(rows: Sequence[tuple]) -> pa.Table:
    """A part-schema table from row tuples laid out as ``ROW_NAMES``."""
    sch = schema()
    columns = list(zip(*rows)) if rows else [()] * len(ROW_NAMES)
    by_name = dict(zip(ROW_NAMES, columns))
    return pa.Table.from_arrays([_array(by_name[f.name], f.type) for f in sch], schema=sch)


def empty_table(columns: Sequence[str]) -> pa.Table:
    return table_from_rows([]).select(list(columns))


# ---- journal ------------------------------------------------------------------------------------

def read_journal(path: str) -> tuple[list[tuple], int]:
    """The rows of one journal file, and how many lines were unreadable (torn by a crash) and skipped."""
    with open(path, "rb") as f:
        data = f.read()
    rows, bad = [], 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad += 1
            continue
        if (not isinstance(obj, dict) or type(obj.get("key")) is not str or type(obj.get("seq")) is not int
                or type(obj.get("rid")) is not str):
            bad += 1
            continue
        rows.append(tuple(obj.get(n) for n in ROW_NAMES))
    return rows, bad


def journal_table(path: str) -> pa.Table:
    rows, bad = read_journal(path)
    if bad:
        log.warning("checkpoint journal %s: skipped %d unreadable line(s) (torn by a crash); "
                    "those rows will be re-run", path, bad)
    return table_from_rows(rows)


# ---- parts --------------------------------------------------------------------------------------

def _conform(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    sch = schema()
    arrays = []
    for name in columns:
        typ = sch.field(name).type
        if name in table.column_names:
            col = table[name]
            arrays.append(col if col.type == typ else col.cast(typ))
        else:  # a column this part predates: all null
            arrays.append(pa.nulls(table.num_rows, typ))
    return pa.table(arrays, names=list(columns))


def read_part(path: str, columns: Sequence[str], where: Any = None) -> pa.Table:
    """Some columns of one part (checksums verified), only the rows matching ``where`` when given
    (pushed down: row groups whose statistics exclude it are not read). FileNotFoundError passes
    through; anything else wrong with the file raises CorruptPart."""
    return read_part_or_skip(path, columns, (), where)[1]


def read_part_or_skip(path: str, columns: Sequence[str], skip: Any,
                      where: Any = None) -> tuple[str | None, pa.Table | None]:
    """(the part's id, some of its columns) as ``read_part``, but the table is None when the id is in
    ``skip`` (a superseded part: its data is not read). One open file, so the id and the rows are of
    the same content even if the name is replaced meanwhile."""
    try:
        with pa.OSFile(path) as f:
            pf = pq.ParquetFile(f, page_checksum_verification=True)
            pid, _ = _ident(pf.metadata.metadata)
            if pid is not None and pid in skip:
                return pid, None
            names = pf.schema_arrow.names
            missing = [c for c in REQUIRED if c not in names]
            if missing:
                raise CorruptPart(f"missing column(s) {missing}")
            present = [c for c in columns if c in names]
            if where is None:
                table = pf.read(columns=present)
            else:
                table = pq.read_table(f, columns=present, filters=where, page_checksum_verification=True,
                                      pre_buffer=False, use_threads=False)
        return pid, _conform(table, columns)
    except (FileNotFoundError, PermissionError):
        raise
    except CorruptPart:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError) as exc:
        raise CorruptPart(str(exc) or type(exc).__name__) from exc


def part_info(path: str) -> PartInfo:
    """Check a part's footer and schema (cheap: no data read): its id, whether it is a stub, its highest
    seq (-1 if empty)."""
    try:
        md = pq.read_metadata(path)
        names = md.schema.to_arrow_schema().names
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise CorruptPart(f"missing column(s) {missing}")
        pid, stub = _ident(md.metadata)
        idx = names.index("seq")
        best = -1
        for i in range(md.num_row_groups):
            stats = md.row_group(i).column(idx).statistics
            if stats is None or not stats.has_min_max:
                break
            best = max(best, int(stats.max))
        else:
            return PartInfo(pid, stub, best)
    except FileNotFoundError:
        raise
    except CorruptPart:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError) as exc:
        raise CorruptPart(str(exc) or type(exc).__name__) from exc
    seq = read_part(path, ["seq"])["seq"]  # no statistics: read the column
    return PartInfo(pid, stub, int(pc.max(seq).as_py()) if len(seq) else -1)


def write_part(table: pa.Table, dirpath: str, name: str, *, fsync: bool, stub: bool = False) -> str:
    """Publish ``table`` as ``dirpath/name`` atomically (hidden temp file, then os.replace) under a
    new random part id, which it returns. ``stub``: an empty part that marks a free name."""
    sch = schema()
    pid = secrets.token_hex(16)
    sch = sch.with_metadata({**sch.metadata, PART_KEY: orjson.dumps({"id": pid, "stub": stub})})
    table = pa.Table.from_arrays(table.select(sch.names).columns, schema=sch)  # the fixed schema, always
    tmp = os.path.join(dirpath, f".{name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd", write_page_checksum=True, row_group_size=ROW_GROUP,
                       use_dictionary=[c for c in _DICTIONARY if c in sch.names])
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, os.path.join(dirpath, name))
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    if fsync:
        fsync_dir(dirpath)
    return pid


def write_stub(dirpath: str, name: str, *, fsync: bool) -> str:
    """Replace ``name`` (atomically) with an empty part marked as a stub; its new id."""
    return write_part(table_from_rows([]), dirpath, name, fsync=fsync, stub=True)


def warn(msg: str) -> None:
    log.warning("%s", msg)
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


def quarantine(dirpath: str, name: str, reason: str, *, fsync: bool = False) -> str | None:
    """Set an unreadable part aside as a hidden ``.corrupt-<name>`` and warn that its rows will re-run.
    The name stays: a hard link keeps the bytes, then an empty stub replaces the part (a reader that
    listed it opens a valid part). Returns the stub's id (None if the part had vanished)."""
    target = CORRUPT_PREFIX + name
    n = 1
    while os.path.exists(os.path.join(dirpath, target)):
        n += 1
        target = f"{CORRUPT_PREFIX}{n}-{name}"
    src, dst = os.path.join(dirpath, name), os.path.join(dirpath, target)
    try:
        try:
            os.link(src, dst)
        except FileNotFoundError:
            raise
        except OSError:  # no hard links on this filesystem: a copy
            shutil.copyfile(src, dst)
    except FileNotFoundError:
        return None
    pid = write_stub(dirpath, name, fsync=fsync)
    warn(f"checkpoint {dirpath}: part {name} is unreadable ({reason}); set aside as {target}. "
         f"The rows it held count as not done and will be re-run.")
    return pid


def unique_seq(table: pa.Table) -> pa.Table:
    """Drop rows repeating a seq (the same row read from both a part and its journal)."""
    _, first = np.unique(table["seq"].to_numpy(), return_index=True)
    return table.take(np.sort(first)) if len(first) < table.num_rows else table


def part_rows(path: str) -> int:
    """Rows in a part, from its footer (no data read); an unreadable part counts as 0."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowException):
        return 0


def current(table: pa.Table) -> pa.Table:
    """One row per key, the one with the highest seq, sorted by key."""
    if table.num_rows <= 1:
        return table
    keys = table["key"].combine_chunks()
    if pc.all(pc.less(keys[:-1], keys[1:])).as_py():  # already sorted and unique (a compacted part)
        return table
    order = pc.sort_indices(table.select(["key", "seq"]),
                            sort_keys=[("key", "ascending"), ("seq", "descending")])
    skeys = keys.take(order)
    first = np.ones(len(skeys), dtype=bool)
    first[1:] = pc.not_equal(skeys[1:], skeys[:-1]).to_numpy(zero_copy_only=False)
    return table.take(order.filter(pa.array(first)))


# ---- the directory ------------------------------------------------------------------------------

def scan(dirpath: str) -> tuple[list[str], list[str], list[str]]:
    """(parts, journals, leftover temp files) of a checkpoint directory, each sorted by name."""
    parts, journals, temps = [], [], []
    for name in os.listdir(dirpath):
        if name.startswith(PART_PREFIX) and name.endswith(PART_SUFFIX):
            parts.append(name)
        elif name.startswith(JOURNAL_PREFIX) and name.endswith(JOURNAL_SUFFIX):
            journals.append(name)
        elif name.endswith(".tmp") and name.startswith((".part-", "." + META + ".", "." + MANIFEST + ".")):
            temps.append(name)
    return sorted(parts), sorted(journals), sorted(temps)


def part_of_journal(journal: str) -> str:
    return PART_PREFIX + journal[len(JOURNAL_PREFIX):-len(JOURNAL_SUFFIX)] + PART_SUFFIX


def is_ours(name: str) -> bool:
    """Entries a directory may hold before its metadata exists (a crash right after taking the lock)."""
    return name == LOCK or (name.startswith("." + META + ".") and name.endswith(".tmp"))
