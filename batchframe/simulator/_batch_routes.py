"""The ``/v1/batches`` routes (OpenAI's, with DashScope's list filters) and the ``/_sim/batches`` controls.

``POST /v1/batches`` (``input_file_id``, ``endpoint`` "/v1/chat/completions" or DashScope's test url
"/v1/chat/ds-test", ``completion_window`` 24h-336h as "<N>h" or "<N>d", ``metadata``), ``GET
/v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``, ``GET /v1/batches`` (newest first; ``after``,
``limit`` 1-100; DashScope's ``ds_name`` (a case-insensitive substring of ``metadata.ds_name``),
``input_file_ids`` (comma-separated, up to 20), ``status`` (comma-separated), ``create_after`` /
``create_before`` (yyyyMMddHHmmss, read as UTC)).

Test controls, no key needed: ``POST /_sim/batches/hold?after_lines=K`` (default 0),
``POST /_sim/batches/release``, ``POST /_sim/batches/expire``.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timezone
from typing import Any

import orjson
from aiohttp import web

from ._batch_lines import TEST_ENDPOINT
from ._batches import STATUSES, Batch, BatchStore
from ._config import SimConfig
from ._http import HTTPError, guarded, int_query, json_response, page

ENDPOINTS = ("/v1/chat/completions", TEST_ENDPOINT)
_WINDOW = re.compile(r"(\d+)([hd])")
_MIN_WINDOW_H, _MAX_WINDOW_H = 24, 336
_METADATA_LIMITS = {"ds_name": 100, "ds_description": 200}
_MAX_FILE_IDS = 20


def window_seconds(window: Any) -> int:
    """Seconds of a ``completion_window`` ("24h" .. "336h", "1d" .. "14d"); 400 otherwise."""
    match = _WINDOW.fullmatch(window) if isinstance(window, str) else None
    hours = int(match[1]) * (24 if match[2] == "d" else 1) if match else 0
    if not _MIN_WINDOW_H <= hours <= _MAX_WINDOW_H:
        raise HTTPError(400, f"Invalid value for 'completion_window': {window!r}. Supported values are "
                        f"{_MIN_WINDOW_H}h to {_MAX_WINDOW_H}h, as '<N>h' or '<N>d'.", code="invalid_value",
                        param="completion_window")
    return hours * 3600


def check_metadata(metadata: Any) -> dict[str, str] | None:
    """OpenAI's metadata rules (up to 16 string pairs, keys up to 64, values up to 512 characters) and
    DashScope's (``ds_name`` up to 100, ``ds_description`` up to 200)."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise HTTPError(400, "Invalid type for 'metadata': expected an object.", code="invalid_type",
                        param="metadata")
    if len(metadata) > 16:
        raise HTTPError(400, "Invalid 'metadata': at most 16 keys.", code="invalid_value", param="metadata")
    for name, value in metadata.items():
        if not isinstance(value, str):
            raise HTTPError(400, f"Invalid type for 'metadata.{name}': expected a string, but got "
                            f"{type(value).__name__} instead.", code="invalid_type", param=f"metadata.{name}")
        limit = _METADATA_LIMITS.get(name, 512)
        if len(name) > 64 or len(value) > limit:
            raise HTTPError(400, f"Invalid 'metadata.{name}': keys up to 64 characters, this value up to "
                            f"{limit}.", code="invalid_value", param=f"metadata.{name}")
    return dict(metadata)


def _timestamp(request: web.Request, name: str) -> int | None:
    text = request.query.get(name)
    if not text:
        return None
    try:
        return int(datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc).timestamp())
    except ValueError:
        raise HTTPError(400, f"Invalid value for '{name}': expected yyyyMMddHHmmss.", code="invalid_value",
                        param=name) from None


def _comma_list(request: web.Request, name: str) -> list[str] | None:
    text = request.query.get(name)
    return [item.strip() for item in text.split(",") if item.strip()] if text else None


class BatchRoutes:
    """The batch routes over a :class:`BatchStore`."""

    def __init__(self, config: SimConfig, store: BatchStore) -> None:
        self.config, self.store = config, store

    def add_to(self, router: web.UrlDispatcher) -> None:
        config = self.config
        router.add_post("/v1/batches", guarded(config, self.create))
        router.add_get("/v1/batches", guarded(config, self.list_batches))
        router.add_get("/v1/batches/{batch_id}", guarded(config, self.retrieve))
        router.add_post("/v1/batches/{batch_id}/cancel", guarded(config, self.cancel))
        for name, route in (("hold", self.hold), ("release", self.release), ("expire", self.expire)):
            router.add_post(f"/_sim/batches/{name}", guarded(config, route, check_key=False))

    async def create(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            raise HTTPError(400, "The request body is not a valid JSON object.")
        input_file_id, endpoint = body.get("input_file_id"), body.get("endpoint")
        if not isinstance(input_file_id, str) or not input_file_id:
            raise HTTPError(400, "Missing required parameter: 'input_file_id'.",
                            code="missing_required_parameter", param="input_file_id")
        if endpoint not in ENDPOINTS:
            supported = ", ".join(repr(e) for e in ENDPOINTS)
            raise HTTPError(400, f"Invalid value: {endpoint!r}. Supported values are: {supported}.",
                            code="invalid_value", param="endpoint")
        window = body.get("completion_window")
        window_s, metadata = window_seconds(window), check_metadata(body.get("metadata"))
        batch = self.store.create(endpoint=endpoint, input_file_id=input_file_id, completion_window=window,
                                  window_s=window_s, metadata=metadata,
                                  authorization=request.headers.get("Authorization"))
        marker = self.config.on_batch_created_marker
        if marker is not None:
            with open(marker, "a", encoding="utf-8") as out:
                out.write(f"{batch.id}\n")
        if self.store.stalled < self.config.stall_batch_creates:
            self.store.stalled += 1
            await asyncio.Event().wait()  # never answers: ends when the client goes away or the server stops
        return json_response(batch.to_json())

    async def retrieve(self, request: web.Request) -> web.Response:
        return json_response(self.store.require(request.match_info["batch_id"]).to_json())

    async def cancel(self, request: web.Request) -> web.Response:
        batch = self.store.require(request.match_info["batch_id"])
        self.store.cancel(batch)
        return json_response(batch.to_json())

    async def list_batches(self, request: web.Request) -> web.Response:
        limit = int_query(request, "limit", 20, 1, 100)
        batches = [b for b in self.store.listing() if self._matches(request, b)]
        return json_response(page([b.to_json() for b in batches], request.query.get("after"), limit))

    def _matches(self, request: web.Request, batch: Batch) -> bool:
        statuses = _comma_list(request, "status")
        if statuses is not None and not set(statuses) <= set(STATUSES):
            raise HTTPError(400, f"Invalid value for 'status': {','.join(statuses)}.", code="invalid_value",
                            param="status")
        file_ids = _comma_list(request, "input_file_ids")
        if file_ids is not None and len(file_ids) > _MAX_FILE_IDS:
            raise HTTPError(400, f"At most {_MAX_FILE_IDS} input_file_ids.", code="invalid_value",
                            param="input_file_ids")
        name = request.query.get("ds_name")
        after, before = _timestamp(request, "create_after"), _timestamp(request, "create_before")
        return ((statuses is None or batch.status in statuses)
                and (file_ids is None or batch.input_file_id in file_ids)
                and (not name or name.casefold() in (batch.metadata or {}).get("ds_name", "").casefold())
                and (after is None or batch.created_at >= after)
                and (before is None or batch.created_at <= before))

    async def hold(self, request: web.Request) -> web.Response:
        after_lines = int_query(request, "after_lines", 0, 0, 2 ** 62)
        self.store.hold(after_lines)
        return json_response({"hold_lines": after_lines})

    async def release(self, request: web.Request) -> web.Response:
        self.store.release()
        return json_response({"hold_lines": None})

    async def expire(self, request: web.Request) -> web.Response:
        self.store.expire_all()
        return json_response({"expired": True})
