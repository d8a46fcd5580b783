"""A local, OpenAI-compatible simulator of DashScope's Batch Chat API (fake answers, no real model).

It serves ``POST /v1/chat/completions`` over real HTTP on 127.0.0.1 and behaves like Batch Chat:
queueing latency, the pending and QPS limits with DashScope-style 429s, 5xx, moderation 400s,
dropped connections, answers slower than the server timeout, thinking tokens and usage. Random faults
and latencies are drawn from a hash of (seed, canonical request body, attempt number), the attempt
number being how many times the server has already seen that exact body, so a run is reproducible
whatever the order of arrival. Also served: ``GET /v1/models``, ``GET /_sim/stats``, ``POST /_sim/reset``.

    with Simulator(latency_s=0.2, throttle_rate=0.1) as sim:
        client = openai.OpenAI(base_url=sim.base_url, api_key="x", max_retries=0)
        ...
        sim.stats()["billed"]

``Simulator.stats()`` keys: requests (chat arrivals), by_status {status: n} (0: connection closed
without an answer; 499: the client went away first), by_code {code: n}, successes / billed (200s with
a valid body), distinct_bodies, distinct_successes, duplicate_successes (successes beyond the first
per body: paid twice), attempts_per_prompt {last user message: arrivals}, pending, peak_pending,
peak_pending_per_model, peak_qps (admitted arrivals in any 1 s window), prompt_tokens,
completion_tokens, reasoning_tokens (billed, successes only). A bad-body answer counts under
by_status 200 and by_code "bad_body" but is not billed.
"""

from ._cli import main
from ._config import ErrorRule, SimConfig
from ._server import Simulator
from ._spawn import SpawnedSimulator

__all__ = ["ErrorRule", "SimConfig", "Simulator", "SpawnedSimulator", "main"]
