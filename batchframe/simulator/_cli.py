"""``batchframe simulate`` / ``python -m batchframe.simulator``: serve the simulator until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections.abc import Sequence
from typing import Any

from ._config import BATCH_ERROR_LINE_STYLES, BATCH_UNFINISHED, LATENCY_DISTRIBUTIONS, SimConfig
from ._server import Simulator


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("none", "off") else int(text)


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "off") else float(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchframe simulate",
        description="Serve a local, OpenAI-compatible Batch Chat simulator on 127.0.0.1 (fake answers, "
                    "no real model), with the Batch File API too. Faults are drawn from the seed, the "
                    "request and the attempt number.")
    add = parser.add_argument
    add("--port", type=int, default=8000, help="port to listen on (0: a free port; default 8000)")
    add("--seed", type=int, default=0)
    add("--models", help="comma-separated model names (default: the Batch Chat models)")
    add("--latency", choices=LATENCY_DISTRIBUTIONS, default="fixed", help="queue-wait distribution")
    add("--latency-s", type=float, default=0.0, help="mean queue wait in seconds")
    add("--latency-max-s", type=float, default=3600.0)
    add("--server-timeout-s", type=float, default=3600.0, help="close connections waiting longer")
    add("--hang-rate", type=float, default=0.0, help="fraction of calls that wait --hang-s")
    add("--hang-s", type=float, default=3600.0)
    add("--max-pending", type=_optional_int, default=10_000, help="per model; 'none' for no cap")
    add("--max-qps", type=_optional_float, default=1000.0, help="per account; 'none' for no cap")
    add("--burst-limit", type=_optional_int, default=None, help="max arrivals per 100 ms")
    for fault in ("throttle", "error-500", "error-503", "drop", "bad-body", "timeout"):
        add(f"--{fault}-rate", type=float, default=0.0)
    add("--retry-after-s", type=float, default=None, help="send Retry-After with 429s")
    add("--max-input-tokens", type=int, default=None)
    add("--moderation-marker", default="[[moderate]]", help="text that triggers a moderation 400")
    add("--api-key-env", metavar="NAME",
        help="require the key held in environment variable NAME (default: accept any key)")
    add("--max-n", type=int, default=4, help="largest n (choices per request) accepted")
    add("--sample-flip-rate", type=float, default=0.25,
        help="chance that a choice after the first picks another label")
    batch = parser.add_argument_group("Batch File mode (/v1/files, /v1/batches)")
    add = batch.add_argument
    add("--batch-max-lines", type=int, default=50_000, help="validation fails a file with more lines")
    add("--batch-max-bytes", type=int, default=500 * 1024 * 1024, help="validation fails a file with more bytes")
    add("--batch-test-max-lines", type=int, default=100, help="line limit of the free batch-test-model")
    add("--batch-validating-s", type=float, default=0.0, help="seconds a batch spends validating")
    add("--batch-line-s", type=float, default=0.0, help="seconds per line in progress (0: at once)")
    add("--batch-finalizing-s", type=float, default=0.0, help="seconds a batch spends finalizing")
    add("--batch-hold-lines", type=_optional_int, default=None, metavar="K",
        help="hold every batch in progress after K lines until POST /_sim/batches/release")
    add("--batch-expire-after-lines", type=_optional_int, default=None, metavar="K",
        help="expire every batch after K lines")
    add("--batch-unfinished", choices=BATCH_UNFINISHED, default="error",
        help="lines an expired or cancelled batch did not run: error lines, or missing from both files")
    add("--batch-failed-in-output-rate", type=float, default=0.0,
        help="share of failed lines written to the output file instead of the error file")
    add("--batch-error-line-style", choices=BATCH_ERROR_LINE_STYLES, default="both",
        help="where a failed line carries its error: response.body.error, error, or both")
    add("--on-batch-created-marker", metavar="PATH", help="append each new batch id to PATH")
    add("--stall-batch-creates", type=int, default=0, metavar="N",
        help="the first N batch creates make their batch but never answer")
    return parser


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The :class:`SimConfig` described by parsed command-line arguments."""
    fields: dict[str, Any] = {name: getattr(args, name) for name in (
        "seed", "latency", "latency_s", "latency_max_s", "server_timeout_s", "hang_rate", "hang_s",
        "max_pending", "max_qps", "burst_limit", "throttle_rate", "error_500_rate", "error_503_rate",
        "drop_rate", "bad_body_rate", "timeout_rate", "retry_after_s", "max_input_tokens",
        "moderation_marker", "max_n", "sample_flip_rate", "batch_max_lines", "batch_max_bytes",
        "batch_test_max_lines", "batch_validating_s", "batch_line_s", "batch_finalizing_s",
        "batch_hold_lines", "batch_expire_after_lines", "batch_unfinished", "batch_failed_in_output_rate",
        "batch_error_line_style", "on_batch_created_marker", "stall_batch_creates")}
    if args.models:
        fields["models"] = tuple(m.strip() for m in args.models.split(",") if m.strip())
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise ValueError(f"environment variable {args.api_key_env} is not set or empty")
        fields["api_key"] = key
    return SimConfig(**fields)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator in the foreground until Ctrl-C (or SIGTERM); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    with Simulator(config, port=args.port) as simulator:
        print(f"batchframe simulator (fake answers, no real model) listening on {simulator.base_url}",
              flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0
