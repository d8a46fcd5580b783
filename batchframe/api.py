"""``batchframe.complete``: the one function the accessor and the CLI share."""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Mapping

import pandas as pd

from .pipeline.options import resolve_options
from .exceptions import ConfigError
from .records import RESULT_COLUMNS
from .pipeline.run import run_frame
from .rows.structured import before_run, prepare, run_parsed

log = logging.getLogger("batchframe")
LOCAL_WORKERS = 4  # the local model answers one call at a time; a queue's wait counts against the timeout


def complete(
    df: pd.DataFrame,
    prompt_col: str | None = None,
    *,
    model: str | None = None,
    template: str | None = None,
    messages_col: str | None = None,
    system: str | None = None,
    checkpoint: Any = None,
    max_workers: int = 256,
    max_pending: int | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 3600,
    progress: bool = True,
    simulate: bool | Mapping[str, Any] = False,
    local: bool | Mapping[str, Any] = False,
    qps: float | None = None,
    max_attempts: int | None = None,
    retry_failed: bool | str | tuple[str, ...] = False,
    dedupe: bool = True,
    fsync: bool = False,
    on_interrupt: str = "auto",
    prices: Mapping[str, float] | None = None,
    max_cost: float | None = None,
    deadline_s: float | None = None,
    extra_body: Mapping[str, Any] | None = None,
    prefix: str = "",
    suffix: str = "",
    image_col: str | None = None,
    parse: bool | None = None,
    **params: Any,
) -> pd.DataFrame:
    """Send one chat completion per row and return a new frame with the answers as columns.

    Exactly one of ``prompt_col`` (the user message), ``template`` (e.g. ``"Sentiment of: {review}"``)
    or ``messages_col`` (a list of ``{"role", "content"}`` per row) says what to send; ``system`` adds
    a system message. Request parameters (``temperature``, ``max_tokens``, ``response_format``,
    ``enable_thinking``, ...) pass by name; anything else goes in ``extra_body``.

    Connection: ``base_url`` (default env ``BATCHFRAME_BASE_URL``, else DashScope's Batch Chat
    endpoint), ``api_key`` (default env ``DASHSCOPE_API_KEY``), ``timeout`` per call (60-3,600 s on
    DashScope). ``simulate=True`` runs against the built-in simulator instead (fake answers);
    ``local=True`` starts a small real model (SmolLM2-135M, ``pip install 'batchframe[local]'``) on
    127.0.0.1 for the run.

    Execution: ``max_workers`` calls in flight at most, never more than ``max_pending``; ``qps``
    caps the request rate (1,000/s by default on DashScope); ``max_attempts`` per row for transient
    errors. ``checkpoint="dir"`` saves every answer as it arrives; rerunning the same call resumes.
    ``max_cost`` / ``deadline_s`` stop dispatching before the budget or time runs out.

    Returns the input columns and index plus ``response``, ``finish_reason``, ``prompt_tokens``,
    ``completion_tokens``, ``total_tokens``, ``reasoning_tokens``, ``reasoning_content``, ``error``,
    ``error_code``, ``status`` (ok / failed / pending), ``attempts``, ``latency_s``, ``request_id``,
    ``cost``; the run summary is in ``out.attrs["batchframe"]``.

    ``image_col``: a column of image URLs or local file paths (sent inline as data URLs) for the
    vision models; NaN means text only; a missing file fails that row (``error_code`` image_error).
    ``response_format`` may also be a pydantic model class (sent as its JSON schema). ``parse=True``
    (the default for a model class) parses each JSON answer into one column per key plus
    ``parse_error``; a row whose answer does not parse keeps ``status`` "ok" (the call succeeded).
    """
    names = {c: f"{prefix}{c}{suffix}" for c in RESULT_COLUMNS}
    params, structured = prepare(params, parse)
    if sum(map(bool, (simulate, local, base_url))) > 1:
        raise ConfigError("give at most one of base_url=, simulate= and local=")
    with _endpoint(simulate, local) as (url, endpoint, served_model):
        if served_model is not None:
            if model not in (None, served_model):
                raise ConfigError(f"local=True serves one model, {served_model!r}; drop model=")
            model = served_model
            max_workers = min(max_workers, LOCAL_WORKERS)
        if model is None:
            raise ConfigError("model= is required, e.g. model='qwen-plus'")
        opts = resolve_options(
            model=model, base_url=base_url, api_key=api_key, timeout=timeout, max_workers=max_workers,
            max_pending=max_pending, qps=qps, max_attempts=max_attempts, simulate=bool(simulate),
            checkpoint=checkpoint, fsync=fsync, retry_failed=retry_failed, dedupe=dedupe,
            progress=progress, on_interrupt=on_interrupt, prices=prices, max_cost=max_cost,
            deadline_s=deadline_s, extra_body=extra_body, params=params, sim_base_url=url,
            endpoint=endpoint)
        rows = dict(prompt_col=prompt_col, template=template, messages_col=messages_col, system=system)
        before_run(df, structured, names, dashscope=opts.dashscope or opts.simulate, **rows)
        return run_parsed(structured, run_frame, df, opts, names=names, image_col=image_col, **rows)


@contextlib.contextmanager
def _endpoint(simulate: bool | Mapping[str, Any], local: bool | Mapping[str, Any]):
    """A server started for this run: (base_url, the hash's endpoint name, the model it serves)."""
    if simulate:
        from .simulator import Simulator

        with Simulator(**(dict(simulate) if isinstance(simulate, Mapping) else {})) as sim:
            log.warning("batchframe: using the built-in Batch Chat simulator at %s: answers are FAKE "
                        "(no real model, no key, no network)", sim.base_url)
            yield sim.base_url, None, None
    elif local:
        from .pipeline.local import ENDPOINT, local_server

        with local_server(**(dict(local) if isinstance(local, Mapping) else {})) as (url, name):
            log.warning("batchframe: using a local model (%s) at %s", name, url)
            yield url, ENDPOINT, name
    else:
        yield None, None, None
