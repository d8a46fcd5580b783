"""What ``batchframe run`` and ``batchframe estimate`` share: arguments into the options of
``complete()``, the input checks, and the checkpoint's input fingerprint.

A checkpoint made by the CLI records its input in its metadata (``meta["input"]``: path, format,
columns and types, rows, and each file's size and mtime) and the outputs its runs wrote
(``meta["outputs"]``). A later run refuses a checkpoint whose recorded input has another path,
other columns or another row count (``--force-checkpoint`` overrides: reuse is still per request
hash, so nothing wrong is reused, but the checkpoint then mixes two inputs), and refuses to replace an
output that exists but is not one of the checkpoint's outputs (``--overwrite`` overrides).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from ..checkpoint.meta import read_meta
from ..io.sources import Source, open_source, to_frame
from ..pipeline.options import RunOptions, resolve_options
from ..records import RESULT_COLUMNS
from ..pipeline.batch import Rows, check_columns, check_ids
from ..rows.structured import Structured, _schema_name, before_run, prepare
from ..exceptions import ConfigError


@dataclasses.dataclass
class Plan:
    source: Source
    names: dict[str, str]
    params: dict[str, Any]
    structured: Structured | None
    rows: Rows
    options: dict[str, Any]  # complete()'s keyword options (not the request parameters)


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


def plan(args: argparse.Namespace) -> Plan:
    """The checks ``complete()`` makes before sending anything, on the input's schema and first rows."""
    source = open_source(args.input, args.format)
    prefix, suffix = getattr(args, "prefix", ""), getattr(args, "suffix", "")
    names = {c: f"{prefix}{c}{suffix}" for c in RESULT_COLUMNS}
    params, structured = prepare(request_params(args), True if args.parse else None)
    rows = Rows(prompt_col=args.prompt_col, template=args.template, messages_col=args.messages_col,
                system=args.system, image_col=args.image_col, id_col=args.id_col)
    check_columns(source, rows, list(names.values()))
    first = next(iter(source.batches(1000)), source.schema.empty_table())
    before_run(to_frame(first), structured, names, dashscope=_dashscope(args),
               **{k: v for k, v in rows.kwargs().items() if k != "image_col"})
    if args.id_col:
        check_ids(source, args.id_col, 100_000)
    options = dict(
        template=args.template, messages_col=args.messages_col, system=args.system, image_col=args.image_col,
        simulate=args.simulate, base_url=args.base_url, extra_body=args.extra_body,
        prices={"input": args.prices[0], "output": args.prices[1]} if args.prices else None,
        retry_failed=True if args.retry_failed else (tuple(args.retry_code) or False),
        dedupe=not args.no_dedupe)
    return Plan(source, names, params, structured, rows, options)


def _dashscope(args: argparse.Namespace) -> bool:
    from ..engine.wire import DASHSCOPE_BATCH_URL, is_dashscope

    if args.simulate:
        return True
    return is_dashscope(args.base_url or os.environ.get("BATCHFRAME_BASE_URL") or DASHSCOPE_BATCH_URL)


def checkpoint_path(args: argparse.Namespace) -> str | None:
    if getattr(args, "no_checkpoint", False):
        return None
    if args.checkpoint:
        return args.checkpoint
    return f"{args.output}.checkpoint" if args.output else None


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
    if force or not isinstance(before, dict):
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


@contextlib.contextmanager
def endpoint(args: argparse.Namespace, *, offline: bool = False):
    """(base URL of a server started for the run or None, the hash's endpoint name, the model).
    ``offline`` (estimate): nothing is started, the hash is the same as a real run's."""
    local = getattr(args, "local", False)
    if sum(map(bool, (args.simulate, local, args.base_url))) > 1:
        raise ConfigError("give at most one of --base-url, --simulate and --local")
    if offline:
        served = ep = None
        if local:
            from ..pipeline.local import ENDPOINT, MODEL_NAME

            served, ep = MODEL_NAME, ENDPOINT
        yield ("http://127.0.0.1:1/v1" if args.simulate or local else None), ep, _model(args, served)
        return
    from ..api import _endpoint

    with _endpoint(args.simulate, local) as (url, ep, served):
        yield url, ep, _model(args, served)


def _model(args: argparse.Namespace, served: str | None) -> str:
    if served is not None:
        if args.model not in (None, served):
            raise ConfigError(f"--local serves one model, {served!r}: drop --model")
        return served
    if not args.model:
        raise ConfigError("--model is required, e.g. --model qwen-plus")
    return args.model


def run_options(args: argparse.Namespace, p: Plan, *, url: str | None, ep: str | None, model: str,
                offline: bool = False, **execution: object) -> RunOptions:
    """``complete()``'s ``resolve_options`` for these arguments (``offline``: no key needed)."""
    return resolve_options(
        model=model, base_url=args.base_url, api_key="estimate-sends-nothing" if offline else None,
        timeout=getattr(args, "timeout", 3600), max_workers=getattr(args, "workers", 256),
        max_pending=getattr(args, "max_pending", None), qps=getattr(args, "qps", None),
        max_attempts=getattr(args, "max_attempts", None), simulate=args.simulate,
        checkpoint=execution.pop("checkpoint", None), fsync=getattr(args, "fsync", False),
        retry_failed=p.options["retry_failed"], dedupe=p.options["dedupe"],
        progress=bool(execution.pop("progress", False)), on_interrupt="return", prices=p.options["prices"],
        max_cost=getattr(args, "max_cost", None), deadline_s=getattr(args, "deadline", None),
        extra_body=args.extra_body, params=p.params, sim_base_url=url, endpoint=ep)
