"""``batchframe run``: check everything, open the checkpoint, stream (``_stream``), report, exit code.

Every check runs before the first request: the input (readable, known format, the columns the
prompt needs, unique ids), the output (a known format, not the input, not inside an input
directory, not someone else's file), the options (``resolve_options``, as ``complete()``), the
checkpoint (not another input's, not locked by a live run).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from ..io import sources as _io
from .plan import check_input, checkpoint_path, endpoint, plan, run_options, stored_meta
from ..io.sinks import TableWriter, remove_stale_temps
from ..pipeline.pricing import resolve_prices
from ..pipeline.run import _meta
from ..pipeline.stream import StreamRun
from ..pipeline.parsed import StreamParse, rewrite_parsed
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
    fmt = _io.format_of(out, args.output_format) if not out.is_dir() else None
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
    p = plan(args)
    source, out = p.source, Path(args.output)
    ckpt = checkpoint_path(args)
    meta = stored_meta(ckpt)
    out_fmt = _check_output(args, source, out, ckpt, meta)
    if ckpt is not None:
        check_input(ckpt, meta, source, args.force_checkpoint)
    progress = not (args.no_progress or args.quiet)
    with endpoint(args) as (url, ep, model):
        if args.local:
            from ..api import LOCAL_WORKERS

            args.workers = min(args.workers, LOCAL_WORKERS)
        opts = run_options(args, p, url=url, ep=ep, model=model, checkpoint=ckpt, progress=progress)
        if opts.max_cost is not None and resolve_prices(opts.spec.model, opts.prices,
                                                        use_table=opts.dashscope or opts.simulate) is None:
            raise ConfigError(f"--max-cost needs prices, and none are known for {opts.spec.model!r} at "
                              f"{args.base_url or 'this endpoint'}: pass --prices IN OUT (per million tokens)")
        rows = dataclasses.replace(p.rows, hasher=opts.spec.hasher(), dedupe=opts.dedupe)
        for note in opts.notes:
            _say(args, note)
        remove_stale_temps(out)
        unparsed = out.with_name(f".{out.name}.unparsed.parquet")  # schema-less --parse's first pass
        remove_stale_temps(unparsed)
        store = lookup = None
        if ckpt is not None:
            from ..checkpoint.store import CheckpointStore
            from ..checkpoint.lookup import StoredLookup

            outputs = [o for o in (meta.get("outputs") or []) if o != str(out.resolve())][-19:]
            # Parts of at least 1/48 of the input (and no time-based flush for 5 min): a run adds fewer
            # than MAX_PARTS parts, so the store never compacts mid-run (compacting reads the whole
            # checkpoint into memory); rows wait in the journal meanwhile, durable all the same.
            part_rows = min(max(source.rows // 48, 50_000), 250_000)
            store = CheckpointStore(ckpt, fsync=opts.fsync, part_rows=part_rows, part_seconds=300.0, meta={
                **_meta(opts), "input": source.fingerprint(), "outputs": [*outputs, str(out.resolve())]}).open()
        parse = StreamParse(p.structured, p.names) if p.structured is not None and p.structured.parse else None
        writer = TableWriter(unparsed if parse is not None and parse.two_pass else out,
                             "parquet" if parse is not None and parse.two_pass else out_fmt, fsync=args.fsync)
        try:
            if store is not None:
                lookup = StoredLookup(ckpt, opts.retry_failed)
            run = StreamRun(source, writer, opts, rows, p.names, parse=parse, store=store, lookup=lookup,
                            batch_rows=args.batch_rows, window_rows=args.window_rows)
            outcome = run.run()
            if outcome.written:
                writer.commit()
                if parse is not None and parse.two_pass:
                    final = TableWriter(out, out_fmt, fsync=args.fsync)
                    try:
                        rewrite_parsed(unparsed, final, parse, args.batch_rows)
                        final.commit()
                    finally:
                        final.abort()
                        unparsed.unlink(missing_ok=True)
        finally:
            writer.abort()
            if store is not None:  # never compacted here: merging parts reads the whole checkpoint
                store.close(compact=False)
    return _report(args, outcome, run, out, ckpt, parse)


def _report(args, outcome, run, out: Path, ckpt: str | None, parse) -> int:
    s = outcome.summary
    if not args.quiet and outcome.stop not in ("interrupted", "fatal"):
        print(s.render(), file=sys.stderr)
        if parse is not None and parse.errors:
            _say(args, f"{parse.errors} answers could not be parsed: see the parse_error column")
    where = f"saved in the checkpoint {ckpt}" if ckpt else "LOST (no checkpoint)"
    done = run.progress.done if run.progress is not None else 0
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
        why = {"budget": "--max-cost reached", "deadline": "--deadline reached"}.get(s.stop_reason or "", "stopped")
        print(f"batchframe: {why}: {s.pending} rows pending (status 'pending' in {out}); rerun the same "
              "command to resume", file=sys.stderr)
        return EXIT_PENDING
    return EXIT_FAILED_ROWS if s.failed else EXIT_OK
