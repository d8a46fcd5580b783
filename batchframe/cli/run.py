"""``batchframe run``: check everything, then the one run (``pipeline.run.Run``) from the input file
to the output file, then the report and the exit code.

Every check runs before the first request: the input (readable, known format, the columns the
prompt needs, unique ids), the output (a known format, not the input, not inside an input
directory, not someone else's file), the options (the one resolver, as ``complete()``), the
checkpoint (not another input's, not locked by a live run).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..io import sources as _io
from ..io.sinks import FileSink, TableWriter, remove_stale_temps
from ..pipeline.columns import output_types
from ..pipeline.parsed import Parse
from ..pipeline.run import Outcome, Run
from .plan import check_input, check_source, checkpoint_path, options, stored_meta
from ..exceptions import ConfigError

EXIT_OK, EXIT_FATAL, EXIT_FAILED_ROWS, EXIT_PENDING = 0, 1, 3, 4


def _say(args: argparse.Namespace, msg: str) -> None:
    if not args.quiet:
        print(f"batchframe: {msg}", file=sys.stderr)


def _check_output(args: argparse.Namespace, source: _io.Source, out: Path, ckpt: str | None,
                  meta: dict) -> str:
    _check_room(out, "output", "-o")
    if ckpt is not None:
        _check_room(Path(ckpt), "checkpoint", "--checkpoint" if args.checkpoint else "-o")
    fmt = _io.format_of(out, args.output_format, flag="--output-format") if not out.is_dir() else None
    if fmt is None:
        raise ConfigError(f"output {out} is a directory: give a file name ending in .csv, .tsv, .jsonl or .parquet")
    real = str(out.resolve())
    if real in source.files or real == source.path:
        raise ConfigError(f"output {out} is the input: choose another -o")
    if os.path.isdir(source.path) and real.startswith(source.path.rstrip(os.sep) + os.sep):
        raise ConfigError(f"output {out} is inside the input directory {source.path} (the next run would "
                          "read it as input): choose another -o")
    if ckpt is not None and Path(ckpt).resolve() in (out.resolve(), Path(source.path)):
        raise ConfigError(f"checkpoint {ckpt} must be a directory of its own, not the input or the output")
    if out.exists() and not args.overwrite and real not in (meta.get("outputs") or []):
        where = f"checkpoint {ckpt}" if ckpt else "no checkpoint"
        raise ConfigError(f"output {out} exists and was not written by a run of this command ({where}); "
                          "nothing was overwritten: remove it, choose another -o, or pass --overwrite")
    return fmt


def _check_room(path: Path, what: str, option: str) -> None:
    """``path`` can be created: its nearest existing ancestor is a directory we may write in."""
    for parent in path.parents:
        if parent.exists():
            break
    else:  # pragma: no cover  (the root exists)
        return
    if not parent.is_dir():
        raise ConfigError(f"{what} {path}: {parent} is a file, not a directory; choose another {option}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path}: cannot create files in {parent} (permission denied); "
                          f"choose another {option}")


def cmd_run(args: argparse.Namespace) -> int:
    source = _io.open_source(args.input, args.format)
    opts = options(args)
    check_source(source, opts, args.batch_rows)
    out = Path(args.output)
    ckpt = checkpoint_path(args)
    meta = stored_meta(ckpt)
    out_fmt = _check_output(args, source, out, ckpt, meta)
    if ckpt is not None:
        check_input(ckpt, meta, source, args.force_checkpoint)
    remove_stale_temps(out)
    unparsed = out.with_name(f".{out.name}.unparsed.parquet")  # schema-less --parse's first pass
    remove_stale_temps(unparsed)
    parse = (Parse(opts.structured, opts.names, nested="json")
             if opts.structured is not None and opts.structured.parse else None)
    two_pass = parse is not None and parse.two_pass
    types = output_types(opts.outputs, opts.n, opts.names)
    writer = TableWriter(unparsed if two_pass else out, "parquet" if two_pass else out_fmt, fsync=args.fsync,
                         types=types)
    outputs = [o for o in (meta.get("outputs") or []) if o != str(out.resolve())][-19:]
    # Parts of at least 1/48 of the input (and no time-based flush for 5 min): a run adds fewer than
    # MAX_PARTS parts, so the store never compacts mid-run (compacting reads the whole checkpoint
    # into memory); rows wait in the journal meanwhile, durable all the same. Never compacted at
    # the end either: merging parts reads the whole checkpoint.
    store = {"part_rows": min(max(source.rows // 48, 50_000), 250_000), "part_seconds": 300.0, "compact": False}
    job = None
    if args.detach:  # Batch File, submit only: the batches go on, the same command without it collects
        from ..batchfile.job import FileJob

        job = FileJob("submit")
    run = Run(opts, _io.FileRows(source, batch_rows=args.batch_rows, id_col=args.id_col), FileSink(writer, parse),
              window_rows=args.window_rows, store_options=store, meta={"outputs": [*outputs, str(out.resolve())]},
              job=job)
    try:
        outcome = run.run()
        if outcome.complete:
            writer.commit()
            if two_pass:
                final = TableWriter(out, out_fmt, fsync=args.fsync, types=types)
                try:
                    _rewrite_parsed(unparsed, final, parse, args.batch_rows)
                    final.commit()
                finally:
                    final.abort()
                    unparsed.unlink(missing_ok=True)
    finally:
        writer.abort()
    if parse is not None:
        outcome.summary.parse_errors = parse.errors
    return _report(args, outcome, run, out, ckpt)


def _rewrite_parsed(unparsed: Path, writer: TableWriter, parse: Parse, batch_rows: int) -> None:
    """Second pass of schema-less ``--parse``: the first pass's Parquet, with the parsed columns."""
    import pyarrow.parquet as pq

    parse.settle()
    with pq.ParquetFile(unparsed, buffer_size=1 << 20, pre_buffer=False) as pf:
        for rb in pf.iter_batches(batch_size=batch_rows):
            writer.write(None, parse.add(rb.to_pandas()))
        if writer.rows == 0:
            writer.write(None, parse.add(pf.schema_arrow.empty_table().to_pandas()))


def _report(args: argparse.Namespace, outcome: Outcome, run: Run, out: Path, ckpt: str | None) -> int:
    s = outcome.summary
    if args.detach and outcome.stop not in ("interrupted", "fatal"):
        stopped = f" (stopped early: {s.stop_reason})" if s.stop_reason not in (None, "detached") else ""
        print(f"batchframe: submitted {s.sent} lines{stopped} in batches recorded in the checkpoint {ckpt}; `batchframe "
              f"status {ckpt}` shows them; rerun this command without --detach to collect {out} "
              f"(`batchframe cancel {ckpt}` cancels)", file=sys.stderr)
        return EXIT_OK
    if not args.quiet and outcome.stop not in ("interrupted", "fatal"):
        print(s.render(), file=sys.stderr)
    done = run.progress.done if run.progress is not None else 0
    if ckpt is None:
        where = "LOST (no checkpoint)"
    elif os.path.isdir(ckpt):
        where = f"saved in the checkpoint {ckpt}"
    else:  # stopped before anything was stored: no half-made checkpoint was left
        where = "nothing to save, no checkpoint left behind"
    if outcome.stop == "fatal":
        print(f"batchframe: error: {' '.join(str(outcome.error).split())} ({done} of {s.rows} rows done, "
              f"{where}; {out} not written)", file=sys.stderr)
        return EXIT_FATAL
    if outcome.stop == "interrupted":
        print(f"batchframe: interrupted: {done} of {s.rows} rows done, {where}; {out} not written. "
              "Rerun the same command to resume.", file=sys.stderr)
        return EXIT_PENDING
    _say(args, f"wrote {s.ok + s.failed + s.pending} rows to {out}")
    if s.pending:
        why = {"budget": "--max-cost reached", "deadline": "--deadline reached",
               "cancelled": "batches cancelled"}.get(s.stop_reason or "", "stopped")
        print(f"batchframe: {why}: {s.pending} rows pending (status 'pending' in {out}); rerun the same "
              "command to resume", file=sys.stderr)
        return EXIT_PENDING
    return EXIT_FAILED_ROWS if s.failed else EXIT_OK
