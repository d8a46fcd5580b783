"""The options of a run: ``complete()``'s keyword arguments, resolved and checked before anything is
sent, into one frozen ``RunOptions``.

``resolve(prompt_col, **options)`` is the only place the option names, their defaults and their rules
live. ``complete()`` takes its signature from it; ``estimate()``, the Polars door, Dask and the CLI call
it with the same names (the CLI maps its flags onto them). It settles the endpoint (base URL, the key
from the environment, sent to DashScope hosts only), DashScope's rules (a key is required, 60-3,600 s
timeout, the account's limits as defaults, thinking off unless asked), the request (parameters, JSON
response formats), the rows (what to send), the budget (``max_cost`` needs prices and a bound on every
call's output) and the execution settings. Nothing is started here: the simulator or a local model is
started by the run (``endpoints``), after every check passed.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from typing import Any, Mapping

from ..batchfile.options import TEST_MODEL, FileOptions, file_options, hash_base_url
from ..engine.clients import check_client, client_base_url
from ..engine.retry import RetryPolicy
from ..engine.wire import DASHSCOPE_BATCH_URL, is_dashscope
from ..exceptions import ConfigError
from ..records import OUTPUT_COLUMNS, RESULT_COLUMNS
from ..rows.prepare import RowPlan
from ..rows.requests import DASHSCOPE_PARAMS, RequestSpec, check_params, thinks_by_default
from ..rows.structured import Structured, prepare as prepare_format
from . import checks
from .pricing import Prices, Tier, resolve_prices

DASHSCOPE_QPS = 1000.0
DASHSCOPE_PENDING = 10_000
LOCAL_WORKERS = 4  # the local model answers one call at a time; a queue's wait counts against the timeout
SIMULATOR_ENDPOINT = "batchframe-simulator"  # the hash's name for simulate=True, whatever its port
PLACEHOLDER_URL = "http://127.0.0.1:1/v1"    # a server started by the run: its URL is known only then
SIMULATED = "simulated"                      # the marker column of simulator runs
SUMMARY_COLUMNS = ("logprob_mean", "logprob_first")  # logprob_summary="mean" / "first"


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunOptions:
    rows: RowPlan
    spec: RequestSpec
    structured: Structured | None = None
    names: Mapping[str, str] = dataclasses.field(default_factory=lambda: {c: c for c in RESULT_COLUMNS})
    api_key: str | None = dataclasses.field(default=None, repr=False)
    timeout: float = 3600.0
    dashscope: bool = True
    simulate: Any = None              # the SimConfig of a simulator run, else None
    local: Mapping[str, Any] | None = None  # local_server() settings of a local-model run, else None
    max_workers: int = 256
    max_pending: int = DASHSCOPE_PENDING
    qps: float | None = None
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    checkpoint: str | None = None
    fsync: bool = False
    retry_failed: bool | tuple[str, ...] = False
    dedupe: bool = True
    progress: bool = True
    on_interrupt: str = "auto"
    on_budget: str = "return"
    prices: Prices | None = None
    prices_given: bool = False
    max_cost: float | None = None
    deadline_s: float | None = None
    outputs: tuple[str, ...] = ()  # what else a completion returns, as columns (records.OUTPUT_COLUMNS)
    n: int = 1
    max_repairs: int = 0
    logprob_summary: tuple[str, ...] = ()  # "mean" / "first": a float column each
    file: FileOptions = dataclasses.field(default_factory=FileOptions)  # mode and Batch File's options
    notes: tuple[str, ...] = ()   # things to tell the user once (e.g. thinking switched off)
    client: Any = dataclasses.field(default=None, repr=False, compare=False)  # the user's openai client

    @property
    def secrets(self) -> tuple[str, ...]:
        """What is redacted from every server-provided string: the key sent, the user's client's."""
        return tuple(k for k in (self.api_key, getattr(self.client, "api_key", None)) if isinstance(k, str))

    @property
    def served(self) -> bool:
        """A server is started for the run (the simulator, a local model)."""
        return self.simulate is not None or self.local is not None

    def meta(self) -> dict:
        """What the checkpoint's metadata records about the run (never the key)."""
        prices = None
        if self.prices is not None:
            prices = {"source": self.prices.source, "tiers": [dataclasses.asdict(t) for t in self.prices.tiers]}
        return {"model": self.spec.model, "base_url": self.spec.endpoint or self.spec.base_url,
                "params": dict(self.spec.params), "prices": prices}

    def __repr__(self) -> str:  # never show the key
        return (f"RunOptions(model={self.spec.model!r}, base_url={self.spec.base_url!r}, "
                f"max_workers={self.max_workers}, timeout={self.timeout}, checkpoint={self.checkpoint!r})")


def resolve(prompt_col: str | None = None, *, model: str | None = None, template: str | None = None,
            messages_col: str | None = None, system: str | None = None, image_col: str | None = None,
            checkpoint: Any = None, max_workers: int = 256, max_pending: int | None = None,
            base_url: str | None = None, api_key: str | None = None, timeout: float = 3600,
            progress: bool = True, simulate: bool | Mapping[str, Any] = False,
            local: bool | Mapping[str, Any] = False, qps: float | None = None,
            max_attempts: int | None = None, retry_failed: bool | str | tuple[str, ...] = False,
            dedupe: bool = True, fsync: bool = False, on_interrupt: str = "auto",
            on_budget: str = "return", prices: Mapping[str, float] | None = None,
            max_cost: float | None = None, deadline_s: float | None = None,
            extra_body: Mapping[str, Any] | None = None, prefix: str = "", suffix: str = "",
            parse: bool | None = None, max_repairs: int = 0, logprob_summary: str | tuple | None = None,
            mode: str = "chat", completion_window: str = "24h",
            poll_s: float | None = None, auto_file_rows: int = 10_000, file_fallback_s: float | None = None,
            file_max_lines: int = 50_000, file_max_bytes: int = 500 * 2 ** 20,
            keep_remote_files: bool = False, file_test: bool = False, client: Any = None,
            **params: Any) -> RunOptions:
    """complete()'s options, checked and resolved (see the module doc and ``complete``)."""
    options = dict(locals())
    return _resolve(options, options.pop("params"), offline=False)


def resolve_offline(prompt_col: str | None = None, **options: Any) -> RunOptions:
    """The same options as a real run resolves them (the same request hashes), for counting what it
    would send: no key is needed and nothing is started."""
    known = option_names()
    params = {k: v for k, v in options.items() if k not in known}
    given = {k: v for k, v in options.items() if k in known}
    return _resolve({**_defaults(), **given, "prompt_col": prompt_col}, params, offline=True)


def _defaults() -> dict:
    import inspect

    return {k: p.default for k, p in inspect.signature(resolve).parameters.items()
            if p.kind is p.KEYWORD_ONLY}


def option_names() -> frozenset[str]:
    return frozenset(_defaults()) | {"prompt_col"}


def _resolve(o: dict, params: dict, *, offline: bool) -> RunOptions:
    check_params(params)  # an unknown keyword is a TypeError naming the valid ones
    rows = RowPlan(prompt_col=o["prompt_col"], template=o["template"], messages_col=o["messages_col"],
                   system=o["system"], image_col=o["image_col"])
    prefix, suffix = checks.text("prefix", o["prefix"], none=False), checks.text("suffix", o["suffix"], none=False)
    names = {c: f"{prefix}{c}{suffix}" for c in [*RESULT_COLUMNS, SIMULATED, *OUTPUT_COLUMNS, *SUMMARY_COLUMNS]}
    extra = checks.mapping("extra_body", o["extra_body"]) or {}
    params, structured = prepare_format(params, o["parse"])
    simulate, local = _simulator(o["simulate"]), _local(o["local"])
    base_url = checks.text("base_url", o["base_url"])
    client = _client(o["client"], o, o["mode"])
    if client is not None:
        base_url = client_base_url(client)
    if sum(x is not None and x is not False for x in (simulate, local, base_url)) > 1:
        raise ConfigError("give at most one of base_url=, simulate= and local=")
    if base_url is not None and not base_url.lower().startswith(("http://", "https://")):
        raise ConfigError(f"base_url= must be an http(s) URL, e.g. https://host/v1; got {base_url!r:.80}")
    model = o["model"]
    if local is not None:
        from .local import ENDPOINT, MODEL_NAME

        if model not in (None, MODEL_NAME):
            raise ConfigError(f"local=True serves one model, {MODEL_NAME!r}; drop model=")
        model, endpoint = MODEL_NAME, ENDPOINT
    else:
        endpoint = SIMULATOR_ENDPOINT if simulate is not None else None
    if model is None:
        raise ConfigError("model= is required, e.g. model='qwen-plus'")
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"model= must be a model name such as 'qwen-plus', got {model!r:.60}")
    if simulate is not None or local is not None:
        base_url = PLACEHOLDER_URL
    else:
        base_url = base_url or os.environ.get("BATCHFRAME_BASE_URL") or DASHSCOPE_BATCH_URL
    deadline_s = checks.number("deadline_s", o["deadline_s"], minimum=0, none=True)
    file = file_options(**{k: o[k] for k in ("mode", "completion_window", "poll_s", "auto_file_rows",
                                             "file_fallback_s", "file_max_lines", "file_max_bytes",
                                             "keep_remote_files", "file_test", "checkpoint")},
                        deadline_s=deadline_s)
    if file.mode != "chat":  # DashScope: hashed under (and falling back to) the region's Batch Chat URL
        base_url = hash_base_url(base_url)
    if file.test:  # the free dry run answers with its own model (and other request hashes)
        model = TEST_MODEL
    dashscope = is_dashscope(base_url)
    api_key = _key(o["api_key"], dashscope=dashscope, served=simulate is not None or local is not None,
                   offline=offline or client is not None)
    if client is not None:
        api_key = None  # the client sends its own
    timeout = checks.number("timeout", o["timeout"], minimum=0)
    if timeout > 7 * 86400:
        raise ConfigError(f"timeout={timeout:g}: seconds per call, at most a week; use deadline_s= "
                          "for a bound on the whole run")
    if dashscope and not 60 <= timeout <= 3600:
        raise ConfigError(f"timeout={timeout:g}: the Batch Chat API waits 60-3,600 s per call; "
                          "choose a timeout in that range (default 3600)")

    notes = []
    clash = sorted(set(extra) & set(params))
    if clash:
        raise ConfigError(f"{clash} given both as keyword and in extra_body=")
    body = {**params, **extra}
    if (dashscope or simulate is not None) and thinks_by_default(model) and "enable_thinking" not in body:
        body["enable_thinking"] = False
        notes.append(f"{model} thinks by default (thinking tokens are billed as output); batchframe "
                     "sends enable_thinking=False. Pass enable_thinking=True to keep thinking on.")
    if not (dashscope or simulate is not None):
        leaked = sorted(set(params) & DASHSCOPE_PARAMS)
        if leaked:
            notes.append(f"{leaked} are DashScope parameters; {base_url} may ignore or reject them.")
    spec = RequestSpec(base_url=base_url, model=model, params=body, endpoint=endpoint)

    prices = (Prices((Tier(10 ** 12, 0.0, 0.0),), f"{TEST_MODEL} is free") if file.test
              else _prices(o["prices"], model, use_table=dashscope or simulate is not None))
    max_cost = checks.number("max_cost", o["max_cost"], minimum=0, none=True)
    if max_cost is not None and not offline:  # an estimate counts, it spends nothing
        _check_budget(prices, body, model)
    max_workers = checks.whole("max_workers", o["max_workers"])
    if local is not None:
        max_workers = min(max_workers, LOCAL_WORKERS)
    max_pending = checks.whole("max_pending", o["max_pending"], none=True) or DASHSCOPE_PENDING
    qps = checks.number("qps", o["qps"], minimum=0, none=True)
    if qps is None and dashscope:
        qps = DASHSCOPE_QPS
    max_attempts = checks.whole("max_attempts", o["max_attempts"], none=True)
    outputs, n, max_repairs, summary = _outputs(params, structured, o["max_repairs"], o["logprob_summary"])
    return RunOptions(
        rows=rows, spec=spec, structured=structured, names=names, api_key=api_key, timeout=timeout,
        dashscope=dashscope, simulate=simulate, local=local, max_workers=max_workers,
        max_pending=max_pending, qps=qps,
        retry=RetryPolicy() if max_attempts is None else RetryPolicy(max_attempts=max_attempts),
        checkpoint=checks.path("checkpoint", o["checkpoint"]), fsync=checks.flag("fsync", o["fsync"]),
        retry_failed=checks.codes("retry_failed", o["retry_failed"]), dedupe=checks.flag("dedupe", o["dedupe"]),
        progress=checks.flag("progress", o["progress"]),
        on_interrupt=checks.choice("on_interrupt", o["on_interrupt"], ("auto", "return", "raise")),
        on_budget=checks.choice("on_budget", o["on_budget"], ("return", "raise")),
        prices=prices, prices_given=o["prices"] is not None, max_cost=max_cost,
        deadline_s=deadline_s, outputs=outputs, n=n, max_repairs=max_repairs, logprob_summary=summary,
        file=file, notes=tuple(notes), client=client)


def _client(client: Any, o: Mapping[str, Any], mode: Any) -> Any:
    """``client=``: the user's openai client carries the endpoint, the key, headers and auth itself."""
    if client is None:
        return None
    check_client(client)
    given = [f"{name}=" for name in ("base_url", "api_key", "simulate", "local")
             if o[name] is not None and o[name] is not False]
    if given:
        raise ConfigError(f"client= carries its own endpoint and key: drop {' and '.join(given)} "
                          "(or drop client=)")
    if mode in ("file", "auto") and not isinstance(client, _openai_sync()):
        raise ConfigError(f"mode={mode!r} with client= needs an openai.OpenAI client (the files and batches "
                          "API is driven synchronously); got an AsyncOpenAI")
    return client


def _openai_sync() -> type:
    import openai

    return openai.OpenAI


def _outputs(params: Mapping[str, Any], structured: Structured | None, max_repairs: Any,
             summary: Any) -> tuple[tuple[str, ...], int, int, tuple[str, ...]]:
    """Which of what else a completion returns become columns (see DESIGN: each once its option is
    used), and the repair and log-probability settings."""
    n = params.get("n", 1)
    max_repairs = checks.whole("max_repairs", max_repairs, minimum=0)
    outputs = []
    if "n" in params:
        outputs.append("responses")
    if params.get("logprobs") is True:
        outputs.append("logprobs")
    if params.get("tools"):
        outputs.append("tool_calls")
    if max_repairs:
        if structured is None:
            raise ConfigError("max_repairs= needs a JSON response_format ({'type': 'json_object'}, a "
                              "json_schema, or a pydantic model class): it re-asks answers that do not parse")
        if n > 1:
            raise ConfigError("max_repairs= works with n=1: which of n answers would a repair replace?")
        outputs.append("repairs")
    if summary is None:
        summary = ()
    elif isinstance(summary, str):
        summary = (summary,)
    if not isinstance(summary, (tuple, list)) or any(s not in ("mean", "first") for s in summary):
        raise ConfigError(f"logprob_summary= must be 'mean', 'first' or both, got {summary!r:.40}")
    if summary and "logprobs" not in outputs:
        raise ConfigError("logprob_summary= needs logprobs=True (the log-probabilities it summarises)")
    return tuple(outputs), n, max_repairs, tuple(dict.fromkeys(summary))


def _key(given: Any, *, dashscope: bool, served: bool, offline: bool) -> str | None:
    """The key for this endpoint. The DashScope key from the environment goes to DashScope hosts only,
    never to another server; other endpoints take api_key= or BATCHFRAME_API_KEY."""
    if given is not None and (not isinstance(given, str) or not given.strip()):
        raise ConfigError("api_key= must be a non-empty string (or leave it out to use DASHSCOPE_API_KEY)")
    if served:
        return None
    key = given or os.environ.get("DASHSCOPE_API_KEY" if dashscope else "BATCHFRAME_API_KEY") or None
    if dashscope and not key and not offline:
        raise ConfigError(
            "no API key for the DashScope endpoint: set the DASHSCOPE_API_KEY environment variable "
            "(or pass api_key= in Python). To try batchframe without a key, pass simulate=True "
            "(the built-in simulator: fake answers, no real model).")
    return key


def _prices(given: Any, model: str, *, use_table: bool) -> Prices | None:
    if given is not None:
        if not isinstance(given, Mapping) or set(given) != {"input", "output"}:
            raise ConfigError("prices= must look like {'input': 0.4, 'output': 1.0} (per million tokens, "
                              f"as billed), got {given!r:.80}")
        inp = checks.number("prices['input']", given["input"], minimum=0, strict=False)
        out = checks.number("prices['output']", given["output"], minimum=0, strict=False)
        given = {"input": inp, "output": out}
    return resolve_prices(model, given, use_table=use_table)


def _check_budget(prices: Prices | None, body: Mapping[str, Any], model: str) -> None:
    """A budget is a promise: it must be countable before anything is sent (see ``budget``)."""
    if prices is None:
        raise ConfigError(f"max_cost= needs prices, and none are known for {model!r} at this endpoint: "
                          "pass prices={'input': .., 'output': ..} (per million tokens, as billed)")
    if not (body.get("max_tokens") or body.get("max_completion_tokens")):
        raise ConfigError("max_cost= needs max_tokens= (each call's worst case is reserved before it is "
                          "sent, and its output is counted at max_tokens)")
    if body.get("enable_thinking") is True and not body.get("thinking_budget"):
        raise ConfigError("max_cost= with enable_thinking=True needs thinking_budget= (thinking tokens are "
                          "billed as output, and without a budget they have no bound)")


def _simulator(value: Any) -> Any:
    """simulate=True or a dict of SimConfig fields -> the SimConfig (checked here, before anything)."""
    if value is False or value is None:
        return None
    from ..simulator import SimConfig

    if value is True:
        return SimConfig()
    if not isinstance(value, Mapping):
        raise ConfigError(f"simulate= must be True or a dict of simulator settings, got {value!r:.60}")
    fields = {f.name for f in dataclasses.fields(SimConfig)}
    for name in value:
        if name not in fields:
            near = difflib.get_close_matches(str(name), sorted(fields), n=2)
            raise ConfigError(f"simulate={{{name!r}: ...}}: no such simulator setting"
                              + (f" (did you mean {' or '.join(map(repr, near))}?)" if near else "")
                              + f"; settings: {', '.join(sorted(fields))}")
    if "latency" in value and not isinstance(value["latency"], str):
        raise ConfigError(f"simulate={{'latency': {value['latency']!r}}}: latency is the wait's distribution "
                          "('fixed', 'uniform', 'exponential', 'lognormal'); the mean wait in seconds "
                          "is latency_s, e.g. simulate={'latency_s': 0.5}")
    try:
        return SimConfig(**value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"simulate=: {exc}") from None


def _local(value: Any) -> Mapping[str, Any] | None:
    if value is False or value is None:
        return None
    if value is True:
        return {}
    allowed = {"n_ctx", "n_threads", "verbose", "startup_timeout"}
    if not isinstance(value, Mapping) or set(value) - allowed:
        raise ConfigError(f"local= must be True or a dict with some of {sorted(allowed)}, got {value!r:.80}")
    return dict(value)
