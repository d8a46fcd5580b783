"""A local, OpenAI-compatible simulator of DashScope's Batch Chat and Batch File APIs (fake answers, no real
model).

It serves ``POST /v1/chat/completions`` over real HTTP on 127.0.0.1 and behaves like Batch Chat:
queueing latency, the pending and QPS limits with DashScope-style 429s, 5xx, moderation 400s,
dropped connections, answers slower than the server timeout, thinking tokens and usage; ``n`` choices,
``logprobs``, tool calls and JSON answers that break until repaired (``_outputs.py``). Random faults
and latencies are drawn from a hash of (seed, canonical request body, attempt number), the attempt
number being how many times the server has already seen that exact body, so a run is reproducible
whatever the order of arrival.

Routes: ``POST /v1/chat/completions``, ``GET /v1/models``; Batch File mode (the real openai SDK works
against them unchanged): ``POST|GET /v1/files``, ``GET|DELETE /v1/files/{id}``,
``GET /v1/files/{id}/content`` (``_files.py``), ``POST|GET /v1/batches``, ``GET /v1/batches/{id}``,
``POST /v1/batches/{id}/cancel`` (``_batch_routes.py``; each batch line is answered by the chat call's
own rules, faults and composer, its attempt numbers shared with chat calls); test controls, no key:
``GET /_sim/stats``, ``POST /_sim/reset``, ``POST /_sim/batches/hold?after_lines=K``,
``POST /_sim/batches/release``, ``POST /_sim/batches/expire`` (also ``Simulator.hold_batches(K)``,
``release_batches()``, ``expire_batches()``, on a spawned simulator too).

    with Simulator(latency_s=0.2, throttle_rate=0.1) as sim:
        client = openai.OpenAI(base_url=sim.base_url, api_key="x", max_retries=0)
        ...
        sim.stats()["billed"]

``Simulator.stats()`` keys: requests (chat arrivals), by_status {status: n} (0: connection closed
without an answer; 499: the client went away first), by_code {code: n}, successes (chat 200s with a
valid body), billed (successes plus billed batch lines), distinct_bodies (chat bodies and batch line
bodies seen), distinct_successes (bodies billed at least once), duplicate_successes (billed answers
beyond the first per body, in either mode: paid twice), attempts_per_prompt {last user message:
arrivals, chat calls and batch lines}, billed_per_prompt {last user message: billed answers, both
modes}, pending, peak_pending, peak_pending_per_model, peak_qps (admitted arrivals in any 1 s window),
prompt_tokens, completion_tokens, reasoning_tokens (billed answers only, both modes). A bad-body answer
counts under by_status 200 and by_code "bad_body" but is not billed. Batch File: files_uploaded,
files_stored (files that exist now: uploads, output and error files), files_deleted, batches_created,
batches {status: n} (every batch by its status now), lines (batch lines run), lines_billed,
lines_by_status {status: n} (0: the line was lost, in neither file), lines_by_code {code: n} (including
``batch_expired`` / ``batch_cancelled`` for lines never run). reset() zeroes the counters, not the
files and batches (files_stored and batches stay).
"""

from ._cli import main
from ._config import ErrorRule, SimConfig
from ._server import Simulator
from ._spawn import SpawnedSimulator

__all__ = ["ErrorRule", "SimConfig", "Simulator", "SpawnedSimulator", "main"]
