"""Receiving a multipart upload: the file part streams to a temp file under a byte cap.

An upload over the cap is refused as soon as the cap is passed, with at most
one chunk past it on disk; the rest of the body is read and thrown away (up to
`DRAIN_BYTES`) so that a client still sending gets to read the 413 instead of a
reset connection. A `Content-Length` already over the cap is refused before
any of the file is stored. Text fields are small and bounded too, so no part
of a request can grow memory without limit.

The body must keep arriving: fewer than `min_bytes` within any `window`
seconds (a stalled or deliberately slow client, which would hold a slot and a
spool file for hours) ends the request with `upload_timeout` (408).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from hark_serving.errors import InputError, TooLarge
from hark_serving.serve.errors import UnsupportedMediaType, UploadTimeout

FILE_FIELD = "file"
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 64
# Boundaries, part headers and the small text fields around the file.
FORM_OVERHEAD = MAX_FIELDS * 1024
DRAIN_BYTES = 64 * 1024 * 1024

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def safe_filename(name: str | None) -> str:
    """The base name a client gave, without directories or control characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("", base).strip()[:200]
    return base if base and base not in (".", "..") else "upload"


@dataclass
class Upload:
    """The file of a multipart request (on disk) and its text fields."""

    path: Path | None = None
    filename: str = "upload"
    size: int = 0
    md5: str = ""
    fields: dict[str, list[str]] = field(default_factory=dict)

    def value(self, name: str) -> str | None:
        """The last value sent for a text field, if any."""
        values = self.fields.get(name)
        return values[-1] if values else None

    def values(self, name: str) -> list[str]:
        return list(self.fields.get(name, []))

    def read(self) -> bytes:
        if self.path is None:
            return b""
        return self.path.read_bytes()

    def close(self) -> None:
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.path = None

    def __enter__(self) -> Upload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Receiver:
    """python-multipart callbacks that fill an `Upload`, enforcing the limits."""

    def __init__(self, max_bytes: int, spool_dir: Path | None) -> None:
        self.max_bytes = max_bytes
        self.spool_dir = spool_dir
        self.upload = Upload()
        self.too_large = False
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._file: BinaryIO | None = None
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._is_file = False
        self._data = bytearray()

    def on_part_begin(self) -> None:
        self._disposition = b""
        self._name = ""
        self._is_file = False
        self._data = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise InputError("a multipart part has no name in its Content-Disposition")
        self._name = options[b"name"].decode("utf-8", "replace")
        # The `file` part is the audio even when a client leaves out its filename.
        self._is_file = b"filename" in options or self._name == FILE_FIELD
        if self._name == FILE_FIELD:
            if self._file is not None:
                raise InputError("send one file per request, in the `file` field")
            filename = options.get(b"filename", b"").decode("utf-8", "replace")
            self.upload.filename = safe_filename(filename)
            fd, name = tempfile.mkstemp(prefix="hark-upload-", dir=self.spool_dir)
            self._file = os.fdopen(fd, "wb")
            self.upload.path = Path(name)
        elif sum(len(v) for v in self.upload.fields.values()) >= MAX_FIELDS:
            raise InputError(f"more than {MAX_FIELDS} form fields")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._name == FILE_FIELD:
            if self.too_large:
                return
            self.upload.size += len(chunk)
            if self.upload.size > self.max_bytes:
                self.too_large = True
                return
            assert self._file is not None
            self._file.write(chunk)
            self._md5.update(chunk)
        elif self._is_file:
            return  # other file parts are not used; drop them unread
        else:
            if len(self._data) + len(chunk) > MAX_FIELD_BYTES:
                raise InputError(f"form field {self._name!r} is over {MAX_FIELD_BYTES} bytes")
            self._data += chunk

    def on_part_end(self) -> None:
        if not self._is_file:
            value = self._data.decode("utf-8", "replace")
            self.upload.fields.setdefault(self._name, []).append(value)

    def finish(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.upload.md5 = self._md5.hexdigest()

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }


def _too_large(max_bytes: int) -> TooLarge:
    return TooLarge(
        f"the upload is over the {max_bytes} byte limit; split the file or use /v1/items"
    )


async def _drain(stream: AsyncIterator[bytes], already: int, limit: int = DRAIN_BYTES) -> None:
    """Read and discard the rest of a refused body, up to `limit` bytes."""
    seen = already
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            return


async def discard(stream: AsyncIterator[bytes], limit: int) -> None:
    """Read and throw away a body that is refused before it was read, so the client
    gets to read the answer instead of a reset connection."""
    await _drain(stream, 0, limit)


async def paced(
    stream: AsyncIterator[bytes], *, window: float, min_bytes: int
) -> AsyncIterator[bytes]:
    """The chunks of `stream`, or `UploadTimeout` once a `window` passes with fewer
    than `min_bytes` received in it (a silent client included)."""
    it = stream.__aiter__()
    loop = asyncio.get_running_loop()
    start, got = loop.time(), 0
    while True:
        left = start + window - loop.time()
        try:
            chunk = await asyncio.wait_for(it.__anext__(), max(left, 0.0))
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:
            raise _too_slow(window, min_bytes) from None
        got += len(chunk)
        if got >= min_bytes:
            start, got = loop.time(), 0
        elif loop.time() > start + window:
            raise _too_slow(window, min_bytes)
        yield chunk


def _too_slow(window: float, min_bytes: int) -> UploadTimeout:
    return UploadTimeout(
        f"the upload arrived too slowly (fewer than {min_bytes} bytes in {window:g} s); "
        "send it over a faster connection, or put it in object storage and use /v1/items"
    )


async def receive_upload(
    headers: Mapping[str, str],
    stream: AsyncIterator[bytes],
    *,
    max_bytes: int,
    spool_dir: Path | None = None,
) -> Upload:
    """Parse a `multipart/form-data` body; the `file` part goes to a temp file.

    Raises `TooLarge` over `max_bytes`, `UnsupportedMediaType` for other bodies,
    and `InputError` for malformed ones. The caller closes the returned upload.
    """
    content_type = headers.get("content-type", "")
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise UnsupportedMediaType(
            f"expected a multipart/form-data body, got {content_type or 'none'!r}"
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise InputError("the multipart/form-data Content-Type has no boundary")
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + FORM_OVERHEAD:
        if int(declared) <= DRAIN_BYTES:
            await _drain(stream, 0)
        raise _too_large(max_bytes)

    receiver = _Receiver(max_bytes, spool_dir)
    parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in stream:
            received += len(chunk)
            parser.write(chunk)
            if receiver.too_large:
                await _drain(stream, received)
                raise _too_large(max_bytes)
        parser.finalize()
    except FormParserError as exc:
        receiver.finish()
        receiver.upload.close()
        raise InputError(f"malformed multipart body: {exc}") from exc
    except BaseException:
        receiver.finish()
        receiver.upload.close()
        raise
    receiver.finish()
    return receiver.upload
