"""One run: frame → requests → checkpoint filter → engine → checkpoint writer → result frame.

``run_frame`` is what ``complete()``, the accessor and the CLI all end in.
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import logging
import sys
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..engine import wire as _client
from ..engine.transport import AsyncCall, AsyncTransport
from ..engine.fdlimit import ensure_open_files
from ..engine.dispatcher import Engine, EngineConfig, EngineStats
from ..rows.messages import OneTurn, check_frame, result_columns, row_messages, row_texts
from .signals import StopSignals, interactive
from ..rows.keys import key_of
from .options import RunOptions
from .pricing import CURRENCY, resolve_prices
from ..records import OK, Request, Result
from .summary import Summary
from ..exceptions import ConfigError, RunFatalError, RunInterrupted

log = logging.getLogger("batchframe")

# Set by batchframe.dask around one partition's run: called with the run's Engine once it exists, so
# the Dask job can stop it (engine.stop is thread-safe) when the job is cancelled.
ENGINE_HOOK: contextvars.ContextVar[Any] = contextvars.ContextVar("batchframe_engine_hook", default=None)


def _keys(index: pd.Index) -> list[str]:
    """Row keys (see _keys.key_of), with fast paths for int and str indexes."""
    if pd.api.types.is_integer_dtype(index.dtype) and not isinstance(index, pd.MultiIndex):
        return [f"i:{x}" for x in index.tolist()]
    labels = index.tolist()
    if all(type(x) is str for x in labels):
        return [f"s:{x}" for x in labels]
    return [key_of(label) for label in labels]


def run_frame(df: pd.DataFrame, opts: RunOptions, *, prompt_col: str | None, template: str | None,
              messages_col: str | None, system: str | None, names: Mapping[str, str],
              image_col: str | None = None) -> pd.DataFrame:
    check_frame(df)
    started = time.monotonic()
    with _no_gc():
        return _prepare_and_run(df, opts, started, prompt_col=prompt_col, template=template,
                                messages_col=messages_col, system=system, names=names,
                                image_col=image_col)


def request_ids(index: pd.Index, messages: Sequence, opts: RunOptions) -> tuple[list[str], list[str | None]]:
    """Per row: its key, and the hash of the request it sends (None: no request)."""
    keys = _keys(index)
    if isinstance(messages, OneTurn):  # text rows: hashed without building their messages
        rids = opts.spec.text_rids(messages.texts, messages.system)
    else:
        hasher = opts.spec.hasher()
        rids = [hasher(m) if m is not None else None for m in messages]
    if not opts.dedupe:  # identical requests stay distinct: the row key joins the hash
        rids = [f"{r}.{k}" if r is not None else None for r, k in zip(rids, keys)]
    return keys, rids


@contextlib.contextmanager
def _no_gc():
    """Building a million small dicts and lists triggers the cyclic collector over and over (3-4x
    the work, measured); none of them form cycles. Collection is back on while calls are in flight."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@contextlib.contextmanager
def _gc_back_on():
    was = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        if not was:
            gc.disable()


def _prepare_and_run(df, opts, started, *, prompt_col, template, messages_col, system, names, image_col):
    if messages_col is None and image_col is None:
        messages, row_errors = row_texts(df, prompt_col=prompt_col, template=template, system=system)
    else:
        messages, row_errors = row_messages(df, prompt_col=prompt_col, template=template,
                                            messages_col=messages_col, system=system, image_col=image_col)
    clash = [c for c in names.values() if c in df.columns]
    if clash:
        raise ConfigError(f"result column(s) {clash} already exist in the frame; pass prefix= or suffix=")
    keys, rids = request_ids(df.index, messages, opts)
    for note in opts.notes:
        log.warning("%s", note)

    store = reuse = None
    if opts.checkpoint is not None:
        from ..checkpoint.store import CheckpointStore

        store = CheckpointStore(opts.checkpoint, fsync=opts.fsync, meta=_meta(opts)).open()
    clean = False
    try:
        if store is not None:
            from ..checkpoint.reuse import Reuse

            reuse = Reuse(store.path, keys, rids, opts.retry_failed)
        out = _execute(df, opts, keys, rids, messages, row_errors, store, reuse, names, started)
        clean = True
        return out
    finally:
        if store is not None:
            store.close(compact=clean)  # after Ctrl-C or a crash: save, don't spend seconds merging


def open_engine(opts: RunOptions) -> tuple[Engine, AsyncTransport]:
    """The engine for a run and the transport carrying its calls (close the transport when done,
    also if the engine never ran)."""
    config = EngineConfig(max_workers=opts.max_workers, max_pending=opts.max_pending, qps=opts.qps,
                          retry=opts.retry)
    ensure_open_files(config.concurrency)
    wire_timeout = opts.timeout + (_client.READ_MARGIN_S if opts.dashscope else 0.0)

    def caller() -> AsyncCall:
        return _client.AsyncCaller(base_url=opts.spec.base_url, api_key=opts.api_key, timeout=wire_timeout,
                                   max_connections=config.concurrency)

    transport = AsyncTransport(caller)
    try:
        engine = Engine(transport, config)
        if ENGINE_HOOK.get() is not None:
            ENGINE_HOOK.get()(engine)
    except BaseException:
        transport.close()
        raise
    return engine, transport


def _meta(opts: RunOptions) -> dict:
    return {"model": opts.spec.model, "base_url": opts.spec.endpoint or opts.spec.base_url,
            "params": dict(opts.spec.params), "prices": dict(opts.prices) if opts.prices else None}


def _execute(df, opts, keys, rids, messages, row_errors, store, reuse, names, started) -> pd.DataFrame:
    n = len(keys)
    by_rid: dict[str, list[int]] = {}
    for pos in (np.flatnonzero(~reuse.use).tolist() if reuse is not None else range(n)):
        rid = rids[pos]
        if rid is not None:
            by_rid.setdefault(rid, []).append(pos)
    prices = resolve_prices(opts.spec.model, opts.prices, use_table=opts.dashscope or opts.simulate)
    if prices is None and opts.prices is None:
        log.warning("batchframe: no price known for model %r at %s: cost is NA (pass prices={'input': .., 'output': ..})",
                 opts.spec.model, opts.spec.base_url)
    fresh: list[Result | None] = [None] * n
    costs: list[float | None] = [None] * n
    unique = set(rids)
    unique.discard(None)
    summary = Summary(rows=n, unique_requests=len(unique),
                      reused=reuse.count if reuse else 0, empty=len(row_errors),
                      currency=CURRENCY if prices else None)

    if by_rid:
        engine, transport = open_engine(opts)
        from .progress import Progress

        progress = Progress(total=n, initial=summary.reused + summary.empty, enabled=opts.progress,
                            currency=summary.currency)
        deadline = started + opts.deadline_s if opts.deadline_s else None

        def admit(request: Request) -> bool:
            if opts.max_cost is not None and prices is not None:
                ok = engine.stats.ok
                per_request = summary.cost / ok if ok else 0.0
                if summary.cost + (engine.stats.in_flight + 1) * per_request > opts.max_cost:
                    return False
            return True

        def tick(stats: EngineStats) -> None:
            progress.tick(stats.limit, stats.in_flight)

        requests = (Request(rid, opts.spec.body(messages[pos[0]])) for rid, pos in by_rid.items())
        signals = StopSignals(lambda name: engine.stop("interrupted"))
        fatal: RunFatalError | None = None
        results = engine.run(requests, admit=admit, on_tick=tick, deadline=deadline)
        try:
            with signals, _gc_back_on():
                for res in results:
                    positions = by_rid[res.rid]
                    cost = (prices.cost(res.prompt_tokens, res.completion_tokens) if prices else None) \
                        if res.status == OK else (0.0 if prices else None)
                    if store is not None:
                        store.write([keys[p] for p in positions], res, cost)
                    for p in positions:
                        fresh[p] = res
                        costs[p] = 0.0 if cost is not None else None
                    costs[positions[0]] = cost  # billed once: copies of an identical request cost nothing
                    summary.add(res, len(positions), cost)
                    progress.add(len(positions), failed=res.status != OK, prompt=res.prompt_tokens,
                                 completion=res.completion_tokens, reasoning=res.reasoning_tokens, cost=cost)
        except RunFatalError as exc:
            fatal = exc
            log.error("%s", exc)
        finally:
            results.close()  # whatever ended the loop, the engine sends nothing more
            progress.close()
            transport.close()  # idempotent: also when the loop above never started
        summary.finish_engine(engine.stats, signals.received)
    else:
        fatal = None

    out = df.copy(deep=False)
    if reuse is not None and reuse.count:
        cols = result_columns(df.index, fresh, row_errors, costs, names,
                              stored=reuse.stored, reused=reuse.mask)
    else:
        cols = result_columns(df.index, fresh, row_errors, costs, names)
    for name in cols.columns:
        out[name] = cols[name]
    summary.finish(out[names["status"]], out[names["cost"]], out[names["error_code"]],
                   time.monotonic() - started)
    out.attrs["batchframe"] = summary.as_dict()
    if opts.progress:
        print(summary.render(), file=sys.stderr)
    elif summary.length_empty:
        log.warning("batchframe: %d rows stopped at max_tokens with an empty answer (finish_reason="
                    "'length'): raise max_tokens or turn thinking off", summary.length_empty)
    if fatal is not None:
        fatal.partial = out
        raise fatal
    if summary.stop_reason == "interrupted":
        where = f" (checkpoint {opts.checkpoint!r})" if opts.checkpoint else " (no checkpoint: pass checkpoint= to keep them)"
        msg = (f"interrupted: {summary.ok + summary.failed} rows finished, {summary.pending} pending"
               f"{where}. Rerun the same call to resume.")
        if opts.on_interrupt == "raise" or (opts.on_interrupt == "auto" and not interactive()):
            raise RunInterrupted(msg, partial=out)
        log.warning("%s", msg)
    return out
