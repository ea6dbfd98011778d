"""Bounds of the data plane: admission control, the receive timeout, spool files that
go with their request, the channel cap of split mode and the size check of items."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from hark_serving.engine.audio import decode_audio
from hark_serving.errors import InputError, TooLarge
from hark_serving.runs.itemspec import ItemRequest
from hark_serving.serve.admission import Admission
from hark_serving.serve.api import build_api
from hark_serving.serve.errors import Overloaded, UploadTimeout
from hark_serving.serve.messages import TranscribeReply, UploadJob
from hark_serving.serve.uploads import paced

from .test_api import WAV, FakeBackend, assert_error, settings


def test_admission_bounds_bytes_and_requests() -> None:
    gate = Admission(max_bytes=100, max_requests=2)
    with gate.admit(80):
        with pytest.raises(Overloaded, match="80 bytes of uploads are in progress"):
            gate.check(30)
        with gate.admit(20), pytest.raises(Overloaded, match="2 requests are in progress"):
            gate.check(0)
    assert (gate.bytes_in_flight, gate.requests) == (0, 0)
    with gate.admit(500):  # one request alone may be as large as the upload limit allows
        pass


class HeldBackend(FakeBackend):
    """Holds every upload until released, and records whether its file was there."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()
        self.saw_file: list[bool] = []

    async def transcribe(self, job: UploadJob) -> TranscribeReply:
        assert job.data is None and job.path is not None  # by path, never by bytes
        self.saw_file.append(Path(job.path).is_file())
        self.arrived.set()
        await self.release.wait()
        return await super().transcribe(job)


def test_past_the_bytes_in_flight_an_upload_gets_503_with_retry_after(tmp_path: Path) -> None:
    backend = HeldBackend()
    # Room for one request of 3 kB (the file and its form), not two.
    app = build_api(backend, settings(max_bytes_in_flight=5000, upload_dir=tmp_path))
    big = (WAV[0], WAV[1] + b"\0" * 3000, WAV[2])

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            first = asyncio.create_task(client.post("/v1/transcribe", files={"file": big}))
            await asyncio.wait_for(backend.arrived.wait(), 20)
            assert len(list(tmp_path.iterdir())) == 1  # spooled on disk while it waits
            second = await client.post("/v1/transcribe", files={"file": big})
            backend.release.set()
            return await first, second

    first, second = asyncio.run(scenario())
    assert first.status_code == 200 and backend.saw_file == [True]
    assert_error(second, 503, "overloaded")
    assert int(second.headers["retry-after"]) > 0
    assert list(tmp_path.iterdir()) == []


def test_past_the_requests_in_flight_items_get_503_too(tmp_path: Path) -> None:
    backend = HeldBackend()
    app = build_api(backend, settings(max_requests_in_flight=1, upload_dir=tmp_path))
    item = {"input_uri": "s3://a/b.wav", "output_uri": "s3://c/b.wav"}

    async def scenario() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            first = asyncio.create_task(client.post("/v1/transcribe", files={"file": WAV}))
            await asyncio.wait_for(backend.arrived.wait(), 20)
            refused = await client.post("/v1/items", json=item)
            backend.release.set()
            await first
            return refused

    assert_error(asyncio.run(scenario()), 503, "overloaded")


def test_the_spool_file_goes_when_the_request_fails_or_is_cancelled(tmp_path: Path) -> None:
    class Failing(FakeBackend):
        async def transcribe(self, job: UploadJob) -> TranscribeReply:
            raise RuntimeError("a bug")

    from fastapi.testclient import TestClient

    client = TestClient(
        build_api(Failing(), settings(upload_dir=tmp_path)), raise_server_exceptions=False
    )
    assert_error(client.post("/v1/transcribe", files={"file": WAV}), 500, "internal")
    assert list(tmp_path.iterdir()) == []

    backend = HeldBackend()
    app = build_api(backend, settings(upload_dir=tmp_path))

    async def cancelled() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            task = asyncio.create_task(client.post("/v1/transcribe", files={"file": WAV}))
            await asyncio.wait_for(backend.arrived.wait(), 20)
            task.cancel()  # the client goes away mid-request
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(cancelled())
    assert list(tmp_path.iterdir()) == []


async def dribble(chunks: list[bytes], delay: float) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await asyncio.sleep(delay)
        yield chunk


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in stream])


def test_a_slow_or_silent_body_is_cut_off() -> None:
    slow = paced(dribble([b"x"] * 50, 0.05), window=0.3, min_bytes=100)
    with pytest.raises(UploadTimeout, match="too slowly"):
        asyncio.run(collect(slow))
    silent = paced(dribble([b"x"], 5.0), window=0.2, min_bytes=1)
    with pytest.raises(UploadTimeout):
        asyncio.run(collect(silent))
    fast = paced(dribble([b"x" * 100] * 10, 0.01), window=0.3, min_bytes=100)
    assert asyncio.run(collect(fast)) == b"x" * 1000


def many_channels(path: Path, channels: int, seconds: float = 1.0) -> Path:
    rate = 8000
    samples = np.random.default_rng(0).standard_normal((int(rate * seconds), channels)) * 3000
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def test_split_mode_caps_the_channels_and_mix_does_not(tmp_path: Path) -> None:
    path = many_channels(tmp_path / "twelve.wav", 12)
    with pytest.raises(InputError) as info:
        decode_audio(path, split_channels=True, max_split_channels=8)
    assert info.value.code == "too_many_channels"
    assert "12 audio channels" in str(info.value) and "channels=mix" in str(info.value)
    assert len(decode_audio(path).channels) == 1
    assert len(decode_audio(path, split_channels=True, max_split_channels=12).channels) == 12


class BigObjectStore:
    """Answers HEAD with a size; a download would fail the test."""

    restricted = True

    def check_allowed(self, uri: Any) -> None: ...

    def check_writable(self, uri: Any) -> None: ...

    def head(self, uri: Any) -> Any:
        from hark_serving.storage.s3 import ObjectInfo

        return ObjectInfo(uri.key, 5 * 1024**3, '"etag"', None)

    def head_metadata(self, uri: Any) -> None:
        return None

    def download(self, uri: Any, dest: Path) -> Any:
        raise AssertionError("downloaded an object over the limit")


def test_an_item_over_max_item_bytes_is_refused_before_the_download() -> None:
    from hark_serving.engine.pipeline import SegmentingSettings
    from hark_serving.engine.vad import WholeFileDetector
    from hark_serving.runs.items import ItemRunner
    from hark_serving.storage.profiles import StorageProfiles

    profiles = StorageProfiles.load(None)
    profiles._stores["default"] = BigObjectStore()  # type: ignore[assignment]
    runner = ItemRunner(profiles, WholeFileDetector(), SegmentingSettings(), max_bytes=1024**3)
    req = ItemRequest(input_uri="s3://calls-in/big.wav", output_uri="s3://calls-out/big.wav")
    with pytest.raises(TooLarge, match="5368709120 bytes, over the 1073741824 byte limit"):
        runner.begin(req)


def test_the_proxy_admits_request_bodies_only_within_its_byte_bound() -> None:
    from hark_serving.serve.proxy_guard import ProxyAdmission
    from hark_serving.serve.settings import ServeSettings

    release = asyncio.Event()
    arrived = asyncio.Event()
    bodies: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        bodies.append(size)
        if size:
            arrived.set()
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = ProxyAdmission(app, ServeSettings(proxy_max_bytes_in_flight=1500))

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=guard)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            first = asyncio.create_task(client.post("/v1/transcribe", content=b"a" * 1000))
            await asyncio.wait_for(arrived.wait(), 20)
            refused = await client.post("/v1/transcribe", content=b"b" * 1000)
            probe = await client.get("/healthz")  # bodiless requests always pass
            release.set()
            return await first, refused, probe

    first, refused, probe = asyncio.run(scenario())
    assert first.status_code == 200 and probe.status_code == 200
    assert_error(refused, 503, "overloaded")
    assert refused.headers["retry-after"] == "5"
    assert bodies == [1000, 0] and guard.in_flight == 0  # the refused body never reached it
