"""The Files API of Batch File mode: uploads, batch output and error files, kept on disk.

Routes: ``POST /v1/files`` (multipart: ``file``, ``purpose`` "batch"), ``GET /v1/files`` (``purpose``,
``order``, ``after``, ``limit``), ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``,
``DELETE /v1/files/{id}``. File contents live in a private temporary directory (removed when the
server stops), so the simulator's memory stays flat whatever the files' size. A file a batch is still
reading stays on disk after its deletion until the batch is done with it.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from ._config import SimConfig
from ._http import HTTPError, guarded, int_query, json_response, page
from ._stats import Stats

_CHUNK = 1 << 16


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    path: Path

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": self.bytes, "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed",
                "status_details": None}


class FileStore:
    """The files the server holds, by id, in creation order."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self._dir: Path | None = None
        self._files: dict[str, StoredFile] = {}
        self._in_use: dict[Path, int] = {}
        self._doomed: set[Path] = set()

    def new_path(self, suffix: str) -> Path:
        """A fresh path in the store's directory (created on first use)."""
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="batchframe-simulator-"))
        return self._dir / f"{uuid.uuid4().hex}{suffix}"

    def add(self, path: Path, *, filename: str, purpose: str, prefix: str, uploaded: bool) -> StoredFile:
        """Register the file written at ``path`` under a new id ``{prefix}-<hex>``."""
        stored = StoredFile(f"{prefix}-{uuid.uuid4().hex}", filename, purpose, path.stat().st_size,
                            int(time.time()), path)
        self._files[stored.id] = stored
        self.stats.file_stored(uploaded=uploaded)
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        return self._files.get(file_id)

    def require(self, file_id: str) -> StoredFile:
        stored = self._files.get(file_id)
        if stored is None:
            raise HTTPError(404, f"No such File object: {file_id}", param="id")
        return stored

    def delete(self, file_id: str) -> None:
        stored = self.require(file_id)
        del self._files[file_id]
        self.stats.file_deleted()
        if self._in_use.get(stored.path):
            self._doomed.add(stored.path)
        else:
            stored.path.unlink(missing_ok=True)

    def listing(self) -> list[StoredFile]:
        return list(self._files.values())

    def acquire(self, stored: StoredFile) -> Path:
        """Keep ``stored``'s content on disk until :meth:`release`, even if the file is deleted."""
        self._in_use[stored.path] = self._in_use.get(stored.path, 0) + 1
        return stored.path

    def release(self, path: Path) -> None:
        self._in_use[path] -= 1
        if not self._in_use[path]:
            del self._in_use[path]
            if path in self._doomed:
                self._doomed.discard(path)
                path.unlink(missing_ok=True)

    def close(self) -> None:
        """Remove every file (the server is stopping)."""
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


class FileRoutes:
    """The ``/v1/files`` routes over a :class:`FileStore`."""

    def __init__(self, config: SimConfig, store: FileStore) -> None:
        self.config, self.store = config, store

    def add_to(self, router: web.UrlDispatcher) -> None:
        config = self.config
        router.add_post("/v1/files", guarded(config, self.upload))
        router.add_get("/v1/files", guarded(config, self.list_files))
        router.add_get("/v1/files/{file_id}", guarded(config, self.retrieve))
        router.add_get("/v1/files/{file_id}/content", guarded(config, self.content))
        router.add_delete("/v1/files/{file_id}", guarded(config, self.delete))

    async def upload(self, request: web.Request) -> web.Response:
        if request.content_type != "multipart/form-data":
            raise HTTPError(400, "Uploads must be multipart/form-data with a `file` and a `purpose`.")
        reader = await request.multipart()
        purpose, written, filename = None, None, "upload.jsonl"
        try:
            while (part := await reader.next()) is not None:
                if part.name == "purpose":
                    purpose = (await part.text()).strip()  # type: ignore[union-attr]
                elif part.name == "file" and written is None:
                    filename = part.filename or filename  # type: ignore[union-attr]
                    written = self.store.new_path(".upload")
                    with written.open("wb") as out:
                        while chunk := await part.read_chunk(_CHUNK):  # type: ignore[union-attr]
                            out.write(chunk)
            if written is None:
                raise HTTPError(400, "Missing required parameter: 'file'.", code="missing_required_parameter",
                                param="file")
            if purpose != "batch":
                raise HTTPError(400, f"Invalid value for 'purpose': {purpose!r}. Supported values are: "
                                "'batch'.", code="invalid_value", param="purpose")
        except BaseException:
            if written is not None:
                written.unlink(missing_ok=True)
            raise
        stored = self.store.add(written, filename=filename, purpose=purpose, prefix="file-batch",
                                uploaded=True)
        return json_response(stored.to_json())

    async def list_files(self, request: web.Request) -> web.Response:
        files = self.store.listing()
        purpose = request.query.get("purpose")
        if purpose:
            files = [f for f in files if f.purpose == purpose]
        if request.query.get("order", "desc") != "asc":
            files.reverse()
        limit = int_query(request, "limit", 10_000, 1, 10_000)
        return json_response(page([f.to_json() for f in files], request.query.get("after"), limit))

    async def retrieve(self, request: web.Request) -> web.Response:
        return json_response(self.store.require(request.match_info["file_id"]).to_json())

    async def content(self, request: web.Request) -> web.StreamResponse:
        stored = self.store.require(request.match_info["file_id"])
        path = self.store.acquire(stored)
        try:
            response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            response.content_length = stored.bytes
            await response.prepare(request)
            with path.open("rb") as source:
                while chunk := source.read(_CHUNK):
                    await response.write(chunk)
            await response.write_eof()
            return response
        finally:
            self.store.release(path)

    async def delete(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        self.store.delete(file_id)
        return json_response({"id": file_id, "object": "file", "deleted": True})

