"""The engine: unique requests in, final results out, each as soon as it is final.

It knows nothing of pandas or checkpoints. One dispatcher (the calling thread) owns every decision:
what to send next, the concurrency limit, the QPS bucket, retries and their backoff, and when to
stop. A transport only makes calls: it takes a request, makes one HTTP attempt, and puts the
``Reply`` on the completion queue. The engine is given its transport: ``transport.AsyncTransport``
(every call on one event loop) or ``ThreadTransport`` below (a plain synchronous ``call(body)`` on
worker threads). Either way an hour-long call still in flight never keeps a script from exiting
after Ctrl-C.

The request iterator may yield ``HOLD``: nothing to send now (the run's read-ahead window is full),
ask again after the next completion. A deadline cuts every wait short: at the deadline dispatch
stops, calls in flight get ``drain_s``, retries not yet due are left unsent.

Retries have exactly one owner: this module (the SDK's own retries are off). Nothing here logs a
server's words: the run that owns the engine redacts them first (``pipeline``).
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import queue
import random
import threading
import time
from collections import deque
from typing import Any, Callable, Iterable, Iterator, Mapping

from .limiter import AdaptiveConcurrency
from .pacing import AdaptiveRate, Pacer, window_safe
from ..records import ABANDONED, GAVE_UP, Reply, Request, Result
from .retry import RetryPolicy, backoff_s, should_retry
from .taxonomy import Action, Verdict, classify
from ..exceptions import ConfigError, RunFatalError

log = logging.getLogger("batchframe")

CallFn = Callable[[Mapping[str, Any]], Reply]
HOLD = None  # yielded by a request iterator: nothing to send now, ask again after a completion
_END = object()


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class EngineConfig:
    """How the engine runs (not part of the request hash)."""

    max_workers: int = 64          # concurrency asked for (threads)
    max_pending: int = 10_000      # hard cap on requests in flight
    qps: float | None = None       # client-side request rate cap; None = none
    initial_concurrency: int | None = None  # slow-start window; default min(limit, 32)
    adaptive: bool = True          # AIMD: cut concurrency on throttling, recover after
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    suspect_limit: int = 3         # identical unknown 4xx on the first rows → the run stops
    drain_s: float = 5.0           # after a stop, how long to wait for calls still in flight

    def __post_init__(self) -> None:
        if not isinstance(self.max_workers, int) or self.max_workers < 1:
            raise ConfigError(f"max_workers must be a positive int, got {self.max_workers!r}")
        if not isinstance(self.max_pending, int) or self.max_pending < 1:
            raise ConfigError(f"max_pending must be a positive int, got {self.max_pending!r}")
        if self.qps is not None and not self.qps > 0:
            raise ConfigError(f"qps must be positive or None, got {self.qps!r}")
        if self.initial_concurrency is not None and self.initial_concurrency < 1:
            raise ConfigError("initial_concurrency must be >= 1")
        if self.drain_s < 0:
            raise ConfigError("drain_s must be >= 0")

    @property
    def concurrency(self) -> int:
        return min(self.max_workers, self.max_pending)


class _Item:
    __slots__ = ("req", "attempts", "timeouts")

    def __init__(self, req: Request) -> None:
        self.req = req
        self.attempts = 0
        self.timeouts = 0


@dataclasses.dataclass(slots=True)
class EngineStats:
    """Live counters, read by the progress display (single writer: the dispatcher)."""

    sent: int = 0            # HTTP attempts made
    retries: int = 0
    throttled: int = 0       # throttling answers seen
    in_flight: int = 0
    limit: int = 0           # current concurrency limit
    rate: float | None = None  # current send rate (requests/s), None without qps
    ok: int = 0
    failed: int = 0
    stop_reason: str | None = None


class Engine:
    """Run requests through ``call`` with bounded concurrency, limits and retries."""

    def __init__(self, transport: Any, config: EngineConfig | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 rand: Callable[[], float] = random.random,
                 sleep_granularity_s: float = 0.2) -> None:
        self.config = config or EngineConfig()
        self._clock = clock
        self._rand = rand
        self._tick = sleep_granularity_s
        # a transport with a fixed number of workers (a thread pool) caps the calls in flight too
        cap = min(self.config.concurrency, getattr(transport, "capacity", None) or self.config.concurrency)
        initial = self.config.initial_concurrency or min(cap, 32)
        self._limiter = (AdaptiveConcurrency(cap, initial=min(initial, cap), double_every_s=0.5, clock=clock)
                         if self.config.adaptive else None)
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        if not hasattr(transport, "submit"):
            raise TypeError("Engine(transport, ...): pass a transport (AsyncTransport, or "
                            "ThreadTransport(call) for a blocking call(body) -> Reply)")
        self._transport = transport
        self._transport.bind(self._done.put)
        # The rate: decided here, applied where calls start. A transport that can pace (the event
        # loop's) spaces the starts itself, right before the bytes go out; otherwise the dispatcher
        # paces its submissions.
        self.stats = EngineStats()
        self._rate: AdaptiveRate | None = None
        self._pace = getattr(transport, "pace", None)
        self._pacer = Pacer(None, clock=clock)
        if self.config.qps is not None:
            rate, self._burst = window_safe(self.config.qps)
            self._rate = AdaptiveRate(rate, clock=clock)
            self._apply_rate(rate)
        self.stats.limit = self.limit
        self._stop = threading.Event()
        self._wait_all = False
        self._fatal: RunFatalError | None = None
        self._suspects: dict[tuple[int, str | None, str | None], int] = {}

    # ----------------------------------------------------------------- control
    @property
    def limit(self) -> int:
        return self._limiter.limit if self._limiter else self.config.concurrency

    def stop(self, reason: str = "stopped", *, wait: bool = False) -> None:
        """Stop dispatching (thread-safe, e.g. from a signal handler). Calls in flight are still
        collected: all of them with ``wait=True`` (a budget stop: they are paid for), else for up
        to ``drain_s`` seconds (Ctrl-C, a deadline, a fatal error), then abandoned."""
        if not self._stop.is_set():
            self.stats.stop_reason = reason
            self._wait_all = wait
            self._stop.set()
            withdraw = getattr(self._transport, "withdraw", None)
            if withdraw is not None and not wait:  # calls handed over but not started yet are not sent
                withdraw()  # (a budget stop lets them go: each was admitted within the budget)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # ----------------------------------------------------------------- sending
    def _submit(self, item: _Item) -> None:
        item.attempts += 1
        self.stats.sent += 1
        self.stats.in_flight += 1
        self._transport.submit(item, item.req.body, self.stats.in_flight)

    # ----------------------------------------------------------------- decisions
    def _decide(self, item: _Item, reply: Reply, retry_heap: list, seq: Iterator[int]) -> Result | None:
        rid = item.req.rid
        if reply is ABANDONED:  # taken back by the transport after a stop: never sent, row pending
            self.stats.sent -= 1
            item.attempts -= 1
            return None
        if reply.ok:
            if self._limiter:
                self._limiter.on_success()
            self.stats.ok += 1
            return Result.from_reply(rid, reply, item.attempts)
        verdict: Verdict = classify(reply)
        if verdict.throttle:
            self._pushed_back(verdict)
        if reply.kind == "timeout":
            item.timeouts += 1
        if verdict.action is Action.STOP_RUN:
            self._set_fatal(reply, verdict)
            return None  # the row stays pending: it is re-sent on resume
        if verdict.action is Action.RETRY:
            if should_retry(verdict, attempts=item.attempts, timeouts=item.timeouts, policy=self.config.retry):
                delay = backoff_s(verdict, attempts=item.attempts, policy=self.config.retry,
                                  retry_after=reply.retry_after, rand=self._rand)
                heapq.heappush(retry_heap, (self._clock() + delay, next(seq), item))
                self.stats.retries += 1
                return None
            self.stats.failed += 1
            return Result.failure(rid, f"{GAVE_UP} {item.attempts} attempts: {_describe(reply)}",
                                  verdict.code, item.attempts, reply)
        # FAIL_ROW
        if verdict.config_suspect and self.stats.ok == 0:
            key = (reply.status, reply.code, reply.message)
            self._suspects[key] = self._suspects.get(key, 0) + 1
            if self._suspects[key] >= self.config.suspect_limit:
                self._set_fatal(reply, dataclasses.replace(
                    verdict, hint="The first requests all failed with this same error: check the request "
                                  "parameters (model, response_format, max_tokens, extra_body)."))
        self.stats.failed += 1
        return Result.failure(rid, _describe(reply), verdict.code, item.attempts, reply)

    def _pushed_back(self, verdict: Verdict) -> None:
        """A rate limit slows the send rate (when there is one to slow); a full pending queue or a
        busy server cuts the calls in flight (a full queue only a little: it is full at about what is
        in flight now)."""
        self.stats.throttled += 1
        if verdict.pressure == "rate" and self._rate is not None:
            self._apply_rate(self._rate.on_throttle())
        elif self._limiter:
            self._limiter.on_throttle(decrease=0.9 if verdict.pressure == "pending" else None)

    def _apply_rate(self, rate: float) -> None:
        self._applied = rate
        if self._pace is not None:
            self._pace(rate, self._burst)
        else:
            self._pacer.set_rate(rate, self._burst)
        self.stats.rate = rate

    def _set_fatal(self, reply: Reply, verdict: Verdict) -> None:
        if self._fatal is None:
            code = reply.code or f"http_{reply.status}"
            msg = f"run stopped: the server answered {reply.status} {code}: {reply.message}"
            if verdict.hint:
                msg += f". {verdict.hint}"
            self._fatal = RunFatalError(msg, status=reply.status, code=code,
                                        provider_message=reply.message, hint=verdict.hint)
        self.stop("fatal")

    # ----------------------------------------------------------------- the loop
    def run(self, requests: Iterable[Request | None], *, admit: Callable[[Request], bool] | None = None,
            on_tick: Callable[[EngineStats], None] | None = None,
            deadline: float | None = None) -> Iterator[Result]:
        """Yield one final ``Result`` per request as it completes (order of completion).

        ``requests`` may yield ``HOLD`` (nothing now: asked again after the next completion).
        ``admit(request)`` is asked before each new request is dispatched; False stops dispatch (a
        budget: the calls in flight are still collected, they are paid for). ``deadline`` (on the
        engine's clock): dispatch stops then, calls in flight get ``drain_s``, and no wait (a backoff,
        a Retry-After) runs past it. ``on_tick(stats)`` is called from this thread at most every
        ``sleep_granularity_s``. Raises ``RunFatalError`` at the end when a run-stopping answer
        arrived. Requests never dispatched, and rows whose call was abandoned, get no result.
        """
        fresh = iter(requests)
        ready: deque[_Item] = deque()
        retry_heap: list = []
        seq = itertools.count()
        exhausted = False
        stop_at: float | None = None
        last_tick = self._clock()
        stats = self.stats
        try:
            while True:
                now = self._clock()
                if deadline is not None and now >= deadline and not self._stop.is_set():
                    self.stop("deadline")
                while retry_heap and retry_heap[0][0] <= now:
                    ready.append(heapq.heappop(retry_heap)[2])
                wait = self._tick
                if not self._stop.is_set():
                    limit = self.limit
                    while stats.in_flight < limit:
                        if ready:
                            item = ready.popleft()
                        elif not exhausted:
                            nxt = next(fresh, _END)
                            if nxt is _END:
                                exhausted = True
                                break
                            if nxt is HOLD:
                                break
                            item = _Item(nxt)
                        else:
                            break
                        if item.attempts == 0 and admit is not None and not admit(item.req):
                            ready.appendleft(item)
                            self.stop("budget", wait=True)
                            break
                        delay = self._pacer.delay()
                        if delay > 0:
                            ready.appendleft(item)
                            wait = min(wait, delay)
                            break
                        self._submit(item)
                    stats.limit = limit
                if stats.in_flight == 0 and (self._stop.is_set() or (exhausted and not ready and not retry_heap)):
                    break
                if self._stop.is_set() and not self._wait_all:
                    if stop_at is None:
                        stop_at = now + self.config.drain_s
                    elif now >= stop_at:
                        break
                    wait = min(wait, max(0.0, stop_at - now))
                elif retry_heap:
                    wait = min(wait, max(0.0, retry_heap[0][0] - now))
                if deadline is not None and not self._stop.is_set():
                    wait = min(wait, max(0.0, deadline - now))
                if now - last_tick >= self._tick:
                    last_tick = now
                    if self._rate is not None and abs(self._rate.rate - self._applied) > self._applied / 200:
                        self._apply_rate(self._rate.rate)  # climbing back after a cut
                    if on_tick is not None:
                        on_tick(stats)
                try:
                    got = self._done.get(timeout=wait) if wait > 0 else self._done.get_nowait()
                except queue.Empty:
                    continue
                while True:  # take every completion waiting, then go back to dispatching
                    item, reply = got
                    stats.in_flight -= 1
                    result = self._decide(item, reply, retry_heap, seq)
                    if result is not None:
                        yield result
                    try:
                        got = self._done.get_nowait()
                    except queue.Empty:
                        break
        finally:
            self._transport.close()  # nothing queued is sent any more; calls in flight are abandoned
        if self._fatal is not None:
            raise self._fatal


def _describe(reply: Reply) -> str:
    if reply.kind == "http":
        return f"{reply.status} {reply.code or ''}: {reply.message or ''}".replace(" :", ":")
    return reply.message or reply.kind


class ThreadTransport:
    """Each call of a synchronous ``call(body)`` on a worker thread (daemon: an hour-long call never
    keeps a script from exiting). Threads are started as the number in flight grows, up to
    ``max_threads`` (the engine keeps no more in flight: ``capacity``), and live until the run ends.
    Fine for tens or hundreds of calls in flight; thousands belong on ``transport.AsyncTransport``."""

    def __init__(self, call: CallFn, *, max_threads: int | None = None) -> None:
        if max_threads is not None and (isinstance(max_threads, bool) or not isinstance(max_threads, int)
                                        or max_threads < 1):
            raise ValueError(f"max_threads must be a positive int or None, got {max_threads!r}")
        self.capacity = max_threads
        self._call = call
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = 0
        self._closed = False
        self._done: Callable[[Any], None] = lambda x: None

    def bind(self, done: Callable[[Any], None]) -> None:
        self._done = done

    def submit(self, item: Any, body: Mapping[str, Any], in_flight: int) -> None:
        if self._threads < in_flight and (self.capacity is None or self._threads < self.capacity):
            self._threads += 1
            threading.Thread(target=self._worker, name=f"batchframe-{self._threads}", daemon=True).start()
        self._work.put((item, body))

    def close(self) -> None:
        self._closed = True
        for _ in range(self._threads):
            self._work.put(None)  # idle workers exit; busy ones exit after their call

    def _worker(self) -> None:
        work, done, call = self._work, self._done, self._call
        while True:
            got = work.get()
            if got is None:
                return
            item, body = got
            if self._closed:  # the run is over (finished, crashed or abandoned): send nothing more
                done((item, Reply(kind="connection", code="abandoned", message="run ended")))
                continue
            try:
                reply = call(body)
            except Exception as exc:  # a bug or an unexpected SDK error: never lose the row silently
                log.debug("call raised", exc_info=True)
                reply = Reply(kind="connection", code="client_error", message=f"{type(exc).__name__}: {exc}")
            done((item, reply))
