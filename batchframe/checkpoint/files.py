"""The checkpoint's files: names, the fixed Parquet schema, journal lines and parts.

A checkpoint is a directory::

    _batchframe.json               metadata (see ``_checkpoint_meta``)
    _lock                          flock()ed by the one writer; holds the writer's pid
    part-<runid>-<n>.parquet       finished rows, fixed schema (see ``schema()``)
    _journal-<runid>-<n>.jsonl     rows written since the last part, one orjson line per row key;
                                   journal ``<runid>-<n>`` becomes part ``<runid>-<n>`` and nothing else
    .part-<...>.parquet.<pid>.tmp  a part being written, renamed into place when complete
    .corrupt-part-<...>.parquet    a part that could not be read, moved aside (its rows are re-run)

Everything that is not a finished part starts with ``_`` or ``.``, which pyarrow's dataset reader skips,
so ``pd.read_parquet(directory)`` works at any instant, even right after a crash.

Everything here is stateless; ``_checkpoint.CheckpointStore`` holds the lock and decides when it runs.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import warnings
from typing import Any, Sequence

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .meta import FORMAT_VERSION, META, fsync_dir  # noqa: F401  (re-exported)
from ..records import RESULT_COLUMNS, Result

log = logging.getLogger("batchframe")

LOCK = "_lock"
PART_PREFIX, PART_SUFFIX = "part-", ".parquet"
JOURNAL_PREFIX, JOURNAL_SUFFIX = "_journal-", ".jsonl"
CORRUPT_PREFIX = ".corrupt-"

# Columns of RESULT_COLUMNS read off the Result; the others ("cost") come from write()'s arguments.
STORED = tuple(n for n in RESULT_COLUMNS if n in Result.__dataclass_fields__)
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


@functools.cache
def schema() -> pa.Schema:
    """The fixed schema of every part, with pandas metadata so a raw read restores nullable dtypes."""
    import pandas as pd

    dtypes = {**_BASE_DTYPES, **RESULT_COLUMNS}
    empty = pd.DataFrame({name: pd.Series([], dtype=d) for name, d in dtypes.items()})
    pandas_meta = pa.Schema.from_pandas(empty, preserve_index=False).metadata
    return pa.schema([pa.field(name, _ARROW[d]) for name, d in dtypes.items()], metadata=pandas_meta)


# ---- building tables ----------------------------------------------------------------------------

def _coerce(value: Any, typ: pa.DataType) -> Any:
    """One value made to fit ``typ``, or None: a bad value must never make a checkpoint unreadable."""
    if value is None:
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
    try:
        with pq.ParquetFile(path, page_checksum_verification=True) as pf:
            names = pf.schema_arrow.names
            missing = [c for c in REQUIRED if c not in names]
            if missing:
                raise CorruptPart(f"missing column(s) {missing}")
            present = [c for c in columns if c in names]
            if where is None:
                table = pf.read(columns=present)
        if where is not None:
            table = pq.read_table(path, columns=present, filters=where, page_checksum_verification=True,
                                  pre_buffer=False, use_threads=False)
        return _conform(table, columns)
    except (FileNotFoundError, PermissionError):
        raise
    except CorruptPart:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError) as exc:
        raise CorruptPart(str(exc) or type(exc).__name__) from exc


def part_max_seq(path: str) -> int:
    """Check a part's footer and schema (cheap: no data read), and return its highest seq (-1 if empty)."""
    try:
        md = pq.read_metadata(path)
        names = md.schema.to_arrow_schema().names
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise CorruptPart(f"missing column(s) {missing}")
        idx = names.index("seq")
        best = -1
        for i in range(md.num_row_groups):
            stats = md.row_group(i).column(idx).statistics
            if stats is None or not stats.has_min_max:
                break
            best = max(best, int(stats.max))
        else:
            return best
    except FileNotFoundError:
        raise
    except CorruptPart:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError) as exc:
        raise CorruptPart(str(exc) or type(exc).__name__) from exc
    seq = read_part(path, ["seq"])["seq"]  # no statistics: read the column
    return int(pc.max(seq).as_py()) if len(seq) else -1


def write_part(table: pa.Table, dirpath: str, name: str, *, fsync: bool) -> None:
    """Publish ``table`` as ``dirpath/name`` atomically: hidden temp file, then os.replace."""
    sch = schema()
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


def warn(msg: str) -> None:
    log.warning("%s", msg)
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


def quarantine(dirpath: str, name: str, reason: str) -> None:
    """Move an unreadable part aside to a hidden ``.corrupt-<name>`` and warn that its rows will re-run."""
    target = CORRUPT_PREFIX + name
    n = 1
    while os.path.exists(os.path.join(dirpath, target)):
        n += 1
        target = f"{CORRUPT_PREFIX}{n}-{name}"
    try:
        os.replace(os.path.join(dirpath, name), os.path.join(dirpath, target))
    except FileNotFoundError:
        pass
    warn(f"checkpoint {dirpath}: part {name} is unreadable ({reason}); moved aside to {target}. "
         f"The rows it held count as not done and will be re-run.")


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
        elif name.endswith(".tmp") and name.startswith((".part-", "." + META + ".")):
            temps.append(name)
    return sorted(parts), sorted(journals), sorted(temps)


def part_of_journal(journal: str) -> str:
    return PART_PREFIX + journal[len(JOURNAL_PREFIX):-len(JOURNAL_SUFFIX)] + PART_SUFFIX


def is_ours(name: str) -> bool:
    """Entries a directory may hold before its metadata exists (a crash right after taking the lock)."""
    return name == LOCK or (name.startswith("." + META + ".") and name.endswith(".tmp"))
