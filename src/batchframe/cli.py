"""``batchframe`` on the command line: a thin shell over :func:`batchframe.complete`.

Exit codes: 0 every row ok; 3 some rows failed; 4 some rows pending (interrupted, budget or
deadline: rerun the same command to resume); 1 the run stopped on an error that hits every row
(bad key, unknown model, ...); 2 bad arguments or input; 130 a second Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

EXIT_OK, EXIT_FATAL, EXIT_USAGE, EXIT_FAILED_ROWS, EXIT_PENDING = 0, 1, 2, 3, 4

EPILOG = """\
environment:
  DASHSCOPE_API_KEY     the API key (never pass it on the command line)
  BATCHFRAME_BASE_URL   default endpoint (else DashScope's Batch Chat endpoint)

exit codes: 0 all rows ok, 3 some rows failed, 4 some rows pending (rerun to resume),
            1 run stopped (bad key, unknown model, ...), 2 bad arguments or input

example (no key, no network: the built-in simulator gives fake answers):
  batchframe run data/samples/reviews.csv -o out/reviews.csv --prompt-col review \\
      --system "Answer with one word: positive, negative or neutral." --model qwen-plus --simulate
"""


def _param(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="annotate a table: one chat completion per row",
                       description="Send one chat completion per row of INPUT and write OUTPUT with "
                                   "the answers as new columns. Rerunning the same command resumes.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="CSV, TSV, JSONL or Parquet file (or a directory of them)")
    p.add_argument("-o", "--output", required=True, help="output file; format from its extension")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt-col", help="column holding the user message")
    what.add_argument("--template", help="user message template, e.g. 'Sentiment of: {review}'")
    what.add_argument("--messages-col", help="column holding a JSON list of chat messages")
    p.add_argument("--system", help="system message for every row")
    p.add_argument("--model", required=True, help="model name, e.g. qwen-plus")
    p.add_argument("--id-col", help="key rows by this column (unique) instead of their position")
    conn = p.add_argument_group("connection")
    conn.add_argument("--simulate", action="store_true",
                      help="use the built-in simulator: fake answers, no key, no network")
    conn.add_argument("--base-url", help="OpenAI-compatible endpoint (default: env or DashScope batch)")
    conn.add_argument("--timeout", type=float, default=3600, help="seconds per call (default 3600)")
    run = p.add_argument_group("execution")
    run.add_argument("--workers", type=int, default=256, help="calls in flight at most (default 256)")
    run.add_argument("--max-pending", type=int, help="hard cap on calls in flight (default 10000)")
    run.add_argument("--qps", type=float, help="requests per second cap (DashScope default 1000)")
    run.add_argument("--max-attempts", type=int, help="attempts per row on transient errors")
    run.add_argument("--checkpoint", help="checkpoint directory (default: OUTPUT.checkpoint)")
    run.add_argument("--no-checkpoint", action="store_true", help="do not checkpoint (no resume)")
    run.add_argument("--fsync", action="store_true", help="fsync every answer (survives power loss)")
    run.add_argument("--retry-failed", nargs="*", metavar="CODE",
                     help="re-run stored failures: all, or only these error codes")
    run.add_argument("--no-dedupe", action="store_true", help="send identical rows separately")
    run.add_argument("--max-cost", type=float, help="stop dispatching before this cost (CNY)")
    run.add_argument("--deadline", type=float, metavar="SECONDS", help="stop dispatching after this")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    req = p.add_argument_group("request parameters")
    req.add_argument("--max-tokens", type=int)
    req.add_argument("--temperature", type=float)
    req.add_argument("--enable-thinking", action=argparse.BooleanOptionalAction, default=None)
    req.add_argument("--param", action="append", type=_param, default=[], metavar="KEY=VALUE",
                     help="any request parameter, VALUE parsed as JSON (repeatable)")
    p.add_argument("--prefix", default="", help="prefix for the result column names")
    p.add_argument("--suffix", default="", help="suffix for the result column names")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchframe", description="Many LLM calls from a table, "
                                     "through DashScope's Batch Chat API or any OpenAI-compatible endpoint.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _run_parser(sub)
    s = sub.add_parser("simulate", help="start the built-in Batch Chat simulator (fake answers)",
                       add_help=False)
    s.add_argument("args", nargs=argparse.REMAINDER)
    st = sub.add_parser("status", help="rows done / failed / pending in a checkpoint")
    st.add_argument("checkpoint")
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from . import _io
    from ._api import complete

    in_path, out_path = Path(args.input), Path(args.output)
    if out_path.resolve() == in_path.resolve():
        raise _usage(f"output {out_path} is the input: choose another path")
    df = _io.read_table(in_path)
    out_fmt = _io.format_of(out_path) if not out_path.is_dir() else "parquet"
    if args.id_col:
        if args.id_col not in df.columns:
            raise _usage(f"--id-col {args.id_col!r} is not a column; columns: {list(df.columns)}")
        df = df.set_index(args.id_col, drop=False)
        df.index.name = None
    params = dict(args.param)
    for name in ("max_tokens", "temperature", "enable_thinking"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    checkpoint = None if args.no_checkpoint else (args.checkpoint or f"{out_path}.checkpoint")
    retry_failed = False if args.retry_failed is None else (tuple(args.retry_failed) or True)
    from .exceptions import RunFatalError, RunInterrupted

    try:
        out = complete(
            df, args.prompt_col, template=args.template, messages_col=args.messages_col,
            system=args.system, model=args.model, simulate=args.simulate, base_url=args.base_url,
            timeout=args.timeout, max_workers=args.workers, max_pending=args.max_pending, qps=args.qps,
            max_attempts=args.max_attempts, checkpoint=checkpoint, fsync=args.fsync,
            retry_failed=retry_failed, dedupe=not args.no_dedupe, max_cost=args.max_cost,
            deadline_s=args.deadline, progress=not args.no_progress, on_interrupt="return",
            prefix=args.prefix, suffix=args.suffix, **params)
    except RunFatalError as exc:
        if exc.partial is not None:
            _io.write_table(exc.partial, out_path, out_fmt)
        print(f"batchframe: {exc}", file=sys.stderr)
        return EXIT_FATAL
    except RunInterrupted as exc:  # pragma: no cover - on_interrupt="return" above
        out = exc.partial
    if args.id_col:
        out = out.reset_index(drop=True)
    _io.write_table(out, out_path, out_fmt)
    summary = out.attrs.get("batchframe", {})
    print(f"batchframe: wrote {len(out)} rows to {out_path}", file=sys.stderr)
    if summary.get("pending"):
        print(f"batchframe: {summary['pending']} rows pending: rerun the same command to resume",
              file=sys.stderr)
        return EXIT_PENDING
    return EXIT_FAILED_ROWS if summary.get("failed") else EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    from ._checkpoint import checkpoint_summary

    print(json.dumps(checkpoint_summary(args.checkpoint), indent=2, default=str))
    return EXIT_OK


class _Usage(Exception):
    pass


def _usage(msg: str) -> _Usage:
    return _Usage(msg)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulate"]:
        from .simulator import main as simulate_main

        return simulate_main(argv[1:]) or 0
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from .exceptions import BatchframeError, ConfigError

    try:
        if args.command == "run":
            return _cmd_run(args)
        return _cmd_status(args)
    except (_Usage, ConfigError, TypeError) as exc:
        print(f"batchframe: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BatchframeError as exc:
        print(f"batchframe: error: {exc}", file=sys.stderr)
        return EXIT_FATAL
    except KeyboardInterrupt:
        print("batchframe: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
