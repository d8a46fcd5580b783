"""The executor of a run: what turns requests into results. Today the Batch Chat engine
(``engine.dispatcher.Engine``: bounded in flight, limits, the only owner of retries) over its wire,
on one event loop. A second executor (Batch File) provides the same three things: ``run(requests,
admit=, on_tick=, deadline=)`` yielding final ``Result``s, ``stop(reason)``, and ``stats``."""

from __future__ import annotations

from typing import Any

from ..engine import wire
from ..engine.clients import client_transport
from ..engine.dispatcher import Engine, EngineConfig
from ..engine.fdlimit import ensure_open_files
from ..engine.transport import AsyncTransport
from .options import RunOptions


def open_engine(opts: RunOptions) -> tuple[Engine, Any]:
    """The engine for a run and the transport carrying its calls (close the transport when done,
    also if the engine never ran)."""
    config = EngineConfig(max_workers=opts.max_workers, max_pending=opts.max_pending, qps=opts.qps,
                          retry=opts.retry)
    ensure_open_files(config.concurrency)
    wire_timeout = opts.timeout + (wire.READ_MARGIN_S if opts.dashscope else 0.0)
    if opts.client is not None:  # the user's own openai client (engine/clients.py)
        transport = client_transport(opts.client, timeout=wire_timeout, max_workers=config.concurrency)
    else:
        transport = AsyncTransport(lambda: wire.AsyncCaller(
            base_url=opts.spec.base_url, api_key=opts.api_key, timeout=wire_timeout,
            max_connections=config.concurrency))
    try:
        return Engine(transport, config), transport
    except BaseException:
        transport.close()
        raise
