"""Images for the vision-language models: ``image_col=`` values into OpenAI ``image_url`` content parts.

A value is an ``http(s)://`` URL (sent as is: the server fetches it), a ``data:`` URL (sent as is),
a local file path (read and sent inline as a base64 ``data:`` URL with the file's image type, sniffed
from its first bytes, else taken from its extension), or raw ``bytes``. NaN / None / "" means a
text-only row. The image (URL or inline data) is part of the messages, so it is in the request hash:
changing an image re-runs that row.

A row whose image cannot be used (missing file, not an image, too large) gets a per-row error and no
request, like an empty prompt; anything else in the column (a number, a list) is a ``ConfigError``
before anything is sent.
"""

from __future__ import annotations

import base64
import mimetypes
import os
from typing import Any, Callable


from .values import is_missing as _missing
from ..exceptions import ConfigError

IMAGE_ERROR = "image_error"
# DashScope's documented limit for one image (URL or base64). Larger files fail the row here instead
# of costing a 400 from the server.
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MIME_TYPES = {  # what the Qwen-VL models accept
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/tiff", "image/heic",
}
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


class RowError(str):
    """The error of one row that sends no request: a message (``str``) with an ``error_code``."""

    code: str

    def __new__(cls, message: str, code: str = IMAGE_ERROR) -> "RowError":
        self = super().__new__(cls, message)
        self.code = code
        return self


def sniff_mime(data: bytes) -> str | None:
    """The image type from the first bytes, or None."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1"):
        return "image/heic"
    return None


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _from_bytes(data: bytes, name: str) -> str | RowError:
    if len(data) > MAX_IMAGE_BYTES:
        return RowError(f"image {name} is {len(data) / 2**20:.1f} MB; the limit is "
                        f"{MAX_IMAGE_BYTES // 2**20} MB per image")
    mime = sniff_mime(data) or mimetypes.guess_type(name)[0]
    if mime not in MIME_TYPES:
        return RowError(f"{name} is not a supported image (png, jpeg, gif, webp, bmp, tiff, heic)")
    return data_url(data, mime)


def image_url(value: Any, *, read: Callable[[str], bytes] | None = None) -> str | RowError | None:
    """The URL to send for one cell: None (text-only row), a URL string, or a ``RowError``."""
    if _missing(value):
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(value), "the bytes value")
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ConfigError(f"image_col values must be URLs, file paths or bytes; got {value!r:.80} of "
                          f"type {type(value).__name__}")
    text = value.strip()
    lowered = text[:8].lower()
    if lowered.startswith(("http://", "https://", "data:")):
        return text
    path = os.path.expanduser(text)
    try:
        data = (read or _read)(path)
    except FileNotFoundError:
        return RowError(f"image file not found: {text}")
    except IsADirectoryError:
        return RowError(f"image path is a directory: {text}")
    except OSError as exc:
        return RowError(f"cannot read image {text}: {exc.strerror or exc}")
    return _from_bytes(data, text)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(MAX_IMAGE_BYTES + 1)


def image_urls(values: list) -> list[str | RowError | None]:
    """``image_url`` for a whole column; a file used by many rows is read once."""
    cache: dict[Any, str | RowError | None] = {}
    out = []
    for value in values:
        hashable = isinstance(value, (str, bytes, os.PathLike)) or value is None
        if hashable:
            if value not in cache:
                cache[value] = image_url(value)
            out.append(cache[value])
        else:
            out.append(image_url(value))
    return out


def user_content(text: str, url: str | None) -> Any:
    """The user message content: the text alone, or an image part then a text part."""
    if url is None:
        return text
    return [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}]


def error_code(reason: Any, default: str) -> str:
    """The ``error_code`` of a per-row error (a ``RowError`` knows its own)."""
    return getattr(reason, "code", default)


# ---- bridge until run_frame takes image_col ---------------------------------------------------

_MESSAGES = "__batchframe_messages__"
