"""Options of a run, resolved and validated before anything is sent.

``resolve_options`` turns ``complete()``'s keyword arguments into one frozen ``RunOptions``: the
endpoint (base URL, key from the environment), the DashScope rules (key required, 60-3,600 s
timeout, account limits as defaults, thinking off unless asked), the request parameters, and the
execution settings.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

from ..engine.wire import DASHSCOPE_BATCH_URL, is_dashscope
from ..rows.requests import DASHSCOPE_PARAMS, RequestSpec, check_params, thinks_by_default
from ..engine.retry import RetryPolicy
from ..exceptions import ConfigError

DASHSCOPE_QPS = 1000.0
DASHSCOPE_PENDING = 10_000
ON_INTERRUPT = ("auto", "return", "raise")
SIMULATOR_ENDPOINT = "batchframe-simulator"  # the hash's name for simulate=True, whatever its port


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunOptions:
    spec: RequestSpec
    api_key: str | None = dataclasses.field(default=None, repr=False)
    timeout: float = 3600.0
    max_workers: int = 64
    max_pending: int = DASHSCOPE_PENDING
    qps: float | None = None
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    dashscope: bool = True
    simulate: bool = False
    checkpoint: str | None = None
    fsync: bool = False
    retry_failed: bool | tuple[str, ...] = False
    dedupe: bool = True
    progress: bool = True
    on_interrupt: str = "auto"
    prices: Mapping[str, float] | None = None
    max_cost: float | None = None
    deadline_s: float | None = None
    notes: tuple[str, ...] = ()   # things to tell the user once (e.g. thinking switched off)

    def __repr__(self) -> str:  # never show the key
        return (f"RunOptions(model={self.spec.model!r}, base_url={self.spec.base_url!r}, "
                f"max_workers={self.max_workers}, timeout={self.timeout}, checkpoint={self.checkpoint!r})")


def resolve_options(*, model: str, base_url: str | None, api_key: str | None, timeout: float,
                    max_workers: int, max_pending: int | None, qps: float | None,
                    max_attempts: int | None, simulate: bool, checkpoint: Any, fsync: bool,
                    retry_failed: Any, dedupe: bool, progress: bool, on_interrupt: str,
                    prices: Mapping[str, float] | None, max_cost: float | None,
                    deadline_s: float | None, extra_body: Mapping[str, Any] | None,
                    params: Mapping[str, Any], sim_base_url: str | None = None,
                    endpoint: str | None = None) -> RunOptions:
    check_params(params)
    if sim_base_url is not None:  # a server started for this run (the simulator, a local model)
        base_url = sim_base_url
    else:
        base_url = base_url or os.environ.get("BATCHFRAME_BASE_URL") or DASHSCOPE_BATCH_URL
    dashscope = is_dashscope(base_url)
    # The DashScope key from the environment goes to DashScope hosts only, never to another server;
    # other endpoints take api_key= or BATCHFRAME_API_KEY.
    if not api_key and not simulate:
        api_key = os.environ.get("DASHSCOPE_API_KEY" if dashscope else "BATCHFRAME_API_KEY")
    api_key = api_key or None
    if dashscope and not api_key:
        raise ConfigError(
            "no API key for the DashScope endpoint: set the DASHSCOPE_API_KEY environment variable "
            "or pass api_key=. To try batchframe without a key, pass simulate=True (--simulate) "
            "(the built-in simulator: fake answers, no real model).")
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if dashscope and not 60 <= timeout <= 3600:
        raise ConfigError(f"timeout={timeout!r}: the Batch Chat API waits 60-3,600 s per call; "
                          "choose a timeout in that range (default 3600)")
    if on_interrupt not in ON_INTERRUPT:
        raise ConfigError(f"on_interrupt must be one of {ON_INTERRUPT}, got {on_interrupt!r}")
    if max_cost is not None and not max_cost > 0:
        raise ConfigError("max_cost must be a positive number")
    if deadline_s is not None and not deadline_s > 0:
        raise ConfigError("deadline_s must be a positive number of seconds")
    if isinstance(retry_failed, str):
        retry_failed = (retry_failed,)
    elif not isinstance(retry_failed, bool):
        retry_failed = tuple(retry_failed)

    body_params = dict(params)
    notes = []
    extra = dict(extra_body or {})
    clash = set(extra) & set(body_params)
    if clash:
        raise ConfigError(f"{sorted(clash)} given both as keyword and in extra_body")
    body_params.update(extra)
    if (dashscope or simulate) and thinks_by_default(model) and "enable_thinking" not in body_params:
        body_params["enable_thinking"] = False
        notes.append(f"{model} thinks by default (thinking tokens are billed as output); batchframe "
                     "sends enable_thinking=False. Pass enable_thinking=True to keep thinking on.")
    if not (dashscope or simulate):
        leaked = sorted(set(params) & DASHSCOPE_PARAMS)
        if leaked:
            notes.append(f"{leaked} are DashScope parameters; {base_url} may ignore or reject them.")

    retry = RetryPolicy() if max_attempts is None else RetryPolicy(max_attempts=max_attempts)
    if max_pending is None:
        max_pending = DASHSCOPE_PENDING
    if qps is None and dashscope:
        qps = DASHSCOPE_QPS
    return RunOptions(
        spec=RequestSpec(base_url=base_url, model=model, params=body_params,
                         endpoint=SIMULATOR_ENDPOINT if simulate else endpoint),
        api_key=api_key, timeout=float(timeout), max_workers=max_workers, max_pending=max_pending,
        qps=qps, retry=retry, dashscope=dashscope, simulate=simulate,
        checkpoint=os.fspath(checkpoint) if checkpoint is not None else None, fsync=fsync,
        retry_failed=retry_failed, dedupe=dedupe, progress=progress, on_interrupt=on_interrupt,
        prices=prices, max_cost=max_cost, deadline_s=deadline_s, notes=tuple(notes),
    )
