"""Where a CSV/TSV file is malformed, by line: an unterminated quote, a row with the wrong number of
fields, the first bytes that are not UTF-8.

pyarrow reads CSV with ``newlines_in_values=True`` (a quoted field may span lines), so a quote that is
never closed silently swallows every line after it into one field: no error, fewer rows. Such a field
runs to the end of the file, so it is the last field pyarrow returns, and the file then ends with an
opening quote (at the start of a field) followed by exactly that field's text. ``unterminated`` checks
that on the last value of the scan pyarrow already made: a few bytes read at the end of the file, no
second parse. The line numbers are counted only when there is an error to report.
"""

from __future__ import annotations

import mmap
import os

from ..exceptions import ConfigError

_CHUNK = 1 << 20


def _line_at(f: str, offset: int) -> int:
    """The 1-based line of byte ``offset``."""
    lines, done = 1, 0
    with open(f, "rb") as fh:
        while done < offset:
            chunk = fh.read(min(_CHUNK, offset - done))
            if not chunk:
                break
            lines += chunk.count(b"\n")
            done += len(chunk)
    return lines


def unterminated(f: str, last: object, delimiter: str) -> ConfigError | None:
    """The error for a quote opened and never closed, if the file's last field (``last``: its value as
    pyarrow read it, None when empty) is such a field."""
    text = "" if last is None else str(last)
    raw = text.replace('"', '""').encode("utf-8")
    size = os.path.getsize(f)
    start = size - len(raw) - 1  # where its opening quote would be
    if start < 0:
        return None
    with open(f, "rb") as fh:
        fh.seek(max(start - 1, 0))
        tail = fh.read()
    head, rest = (tail[:1], tail[1:]) if start > 0 else (b"", tail)
    if rest != b'"' + raw or head not in (b"", delimiter.encode(), b"\n", b"\r"):
        return None
    line = _line_at(f, start)
    return ConfigError(f"{f}: line {line}: a quote opened here is never closed, so every line after it "
                       f"would be read into one field; close the quote (a quote inside a quoted field "
                       f"is written twice: \"\")")


def wrong_fields(f: str, expected: int, actual: int, text: str) -> ConfigError:
    """The error for a row with the wrong number of fields, at its line when it can be found."""
    where = ""
    needle = text.encode("utf-8", "replace")
    if needle and os.path.getsize(f):
        with open(f, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            at = mm.find(needle)
        if at >= 0:
            where = f"line {_line_at(f, at)}: "
    hint = " (a quote opened in it and never closed?)" if '"' in text and "\n" in text else ""
    return ConfigError(f"{f}: {where}expected {expected} fields, found {actual}{hint}: "
                       f"{' '.join(text.split())[:120]!r}")


def not_utf8(f: str) -> ConfigError | None:
    """The error naming the first line that is not UTF-8, or None if the whole file is."""
    base, carry = 0, b""  # base: the file offset of ``carry``
    with open(f, "rb") as fh:
        while True:
            chunk = fh.read(_CHUNK)
            data = carry + chunk
            try:
                data.decode("utf-8")
                base, carry = base + len(data), b""
            except UnicodeDecodeError as exc:
                if chunk and exc.end == len(data) and exc.reason == "unexpected end of data":
                    base, carry = base + exc.start, data[exc.start:]  # a character cut by the chunk's end
                    continue
                at, bad, name = base + exc.start, data[exc.start:exc.end], os.path.basename(f)
                return ConfigError(
                    f"{f}: line {_line_at(f, at)} is not UTF-8 (byte {bad.hex(' ')} at offset {at}): the "
                    f"file is in another encoding, and batchframe reads text files as UTF-8. Re-encode it "
                    f"first, e.g. iconv -f cp1252 -t utf-8 {name} > utf8-{name} (with the file's real "
                    f"encoding)")
            if not chunk:
                return None
