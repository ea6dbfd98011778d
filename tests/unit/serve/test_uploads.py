"""Upload limits: the file streams to disk under a byte cap; other bodies are refused."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hark_serving.errors import InputError, TooLarge
from hark_serving.serve.errors import UnsupportedMediaType
from hark_serving.serve.uploads import (
    DRAIN_BYTES,
    MAX_FIELD_BYTES,
    Upload,
    receive_upload,
    safe_filename,
)


def multipart(
    files: dict[str, tuple[str, bytes]] | None = None,
    data: dict[str, str | list[str]] | None = None,
) -> tuple[dict[str, str], bytes]:
    request = httpx.Request("POST", "http://x/", files=files or {}, data=data or {})
    return dict(request.headers), request.read()


class Stream:
    """A request body delivered in chunks, counting what was read."""

    def __init__(self, body: bytes, chunk: int = 4096) -> None:
        self.body = body
        self.chunk = chunk
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self.body), self.chunk):
            self.read += len(self.body[i : i + self.chunk])
            yield self.body[i : i + self.chunk]


def receive(headers: dict[str, str], stream: Stream, max_bytes: int, tmp: Path) -> Upload:
    return asyncio.run(
        receive_upload(headers, stream.__aiter__(), max_bytes=max_bytes, spool_dir=tmp)
    )


def test_the_file_lands_on_disk_with_its_size_md5_and_the_fields(tmp_path: Path) -> None:
    audio = bytes(range(256)) * 100
    headers, body = multipart(
        {"file": ("dir/a.wav", audio)},
        {"language": "en", "timestamp_granularities[]": ["word", "segment"]},
    )
    with receive(headers, Stream(body), 1 << 20, tmp_path) as upload:
        assert upload.path is not None and upload.path.parent == tmp_path
        assert upload.read() == audio
        assert (upload.filename, upload.size) == ("a.wav", len(audio))
        assert upload.md5 == hashlib.md5(audio).hexdigest()
        assert upload.value("language") == "en"
        assert upload.values("timestamp_granularities[]") == ["word", "segment"]
        assert upload.value("missing") is None
    assert list(tmp_path.iterdir()) == []  # closing removes the spooled file


def test_a_file_over_the_cap_is_refused_and_nothing_is_left_on_disk(tmp_path: Path) -> None:
    headers, body = multipart({"file": ("a.wav", b"x" * 50_000)})
    headers.pop("content-length")  # as with chunked transfer: only counting can tell
    stream = Stream(body)
    with pytest.raises(TooLarge, match="10000 byte limit"):
        receive(headers, stream, 10_000, tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert stream.read == len(body)  # the rest was drained, so the client reads the 413


def test_a_declared_length_over_the_cap_is_refused_before_any_file_is_stored(
    tmp_path: Path,
) -> None:
    headers, body = multipart({"file": ("a.wav", b"x" * 200_000)})
    stream = Stream(body)
    with pytest.raises(TooLarge):
        receive(headers, stream, 10_000, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_draining_a_refused_body_stops_at_a_bound(tmp_path: Path) -> None:
    headers, body = multipart({"file": ("a.wav", b"x" * (DRAIN_BYTES + 4_000_000))})
    headers.pop("content-length")
    stream = Stream(body, chunk=1 << 20)
    with pytest.raises(TooLarge):
        receive(headers, stream, 1000, tmp_path)
    assert stream.read < len(body)


def test_the_file_at_exactly_the_cap_is_accepted(tmp_path: Path) -> None:
    headers, body = multipart({"file": ("a.wav", b"y" * 10_000)})
    with receive(headers, Stream(body), 10_000, tmp_path) as upload:
        assert upload.size == 10_000


def test_a_request_without_the_file_field_has_no_path(tmp_path: Path) -> None:
    headers, body = multipart({"audio": ("a.wav", b"RIFF")}, {"language": "en"})
    with receive(headers, Stream(body), 1000, tmp_path) as upload:
        assert upload.path is None and upload.read() == b""
        assert upload.value("language") == "en"


def test_a_file_part_without_a_filename_is_still_the_file(tmp_path: Path) -> None:
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"\r\n\r\n'
        f"RIFFdata\r\n--{boundary}--\r\n"
    ).encode()
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    with receive(headers, Stream(body), 1000, tmp_path) as upload:
        assert (upload.read(), upload.filename) == (b"RIFFdata", "upload")


def test_other_bodies_are_unsupported_media(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedMediaType):
        receive({"content-type": "application/json"}, Stream(b"{}"), 1000, tmp_path)
    with pytest.raises(UnsupportedMediaType):
        receive({}, Stream(b""), 1000, tmp_path)


def test_malformed_multipart_is_an_input_error(tmp_path: Path) -> None:
    headers = {"content-type": "multipart/form-data; boundary=abc"}
    with pytest.raises(InputError, match="malformed"):
        receive(headers, Stream(b"--abc\r\nno headers here\r\n\r\n"), 1000, tmp_path)
    with pytest.raises(InputError, match="boundary"):
        receive({"content-type": "multipart/form-data"}, Stream(b""), 1000, tmp_path)


def test_text_fields_are_bounded(tmp_path: Path) -> None:
    headers, body = multipart(
        {"file": ("a.wav", b"RIFF")}, {"language": "x" * (MAX_FIELD_BYTES + 1)}
    )
    with pytest.raises(InputError, match="language"):
        receive(headers, Stream(body), 1 << 20, tmp_path)


@pytest.mark.parametrize(
    "given, safe",
    [
        ("a.wav", "a.wav"),
        ("../../etc/passwd", "passwd"),
        ("C:\\audio\\call.mp3", "call.mp3"),
        ("bad\x00name\n.wav", "badname.wav"),
        ("", "upload"),
        (None, "upload"),
        ("..", "upload"),
    ],
)
def test_filenames_lose_directories_and_control_characters(given: str | None, safe: str) -> None:
    assert safe_filename(given) == safe
