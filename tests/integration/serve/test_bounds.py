"""A real `hark serve` under upload load, slow clients and oversized work: bounded, never 500.

Sizes are moderate so the module runs in a minute or two on two cores;
`benchmarks/upload_load.py` runs the full-size load and measures memory.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest

from tests.fixtures import audio

from .conftest import app_args, assert_error, deploy

pytestmark = pytest.mark.integration

GARBAGE_MB = 8


@pytest.fixture(scope="module")
def spool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Serve app's upload/spill directory (an emptyDir in a pod)."""
    return tmp_path_factory.mktemp("spool")


@pytest.fixture(scope="module")
def url(serve_instance: str, tiny_model_dir: Path, spool: Path) -> Iterator[str]:
    with deploy(serve_instance, app_args(tiny_model_dir, upload_dir=str(spool))) as base:
        yield base


def many_channels(path: Path, channels: int, seconds: float = 2.0) -> Path:
    rate = 8000
    noise = np.random.default_rng(1).standard_normal((int(rate * seconds), channels)) * 3000
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(noise.astype("<i2").tobytes())
    return path


def test_under_upload_load_every_answer_is_bounded_and_the_server_recovers(
    url: str, spool: Path, tmp_path: Path, audio_dir: Path
) -> None:
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(0).bytes(GARBAGE_MB * 1024 * 1024))
    long_wav = audio.long_speech(tmp_path / "long.wav", 1)
    short = audio_dir / "one_sentence_16k.wav"
    files = [garbage] * 16 + [long_wav] * 8 + [short] * 8  # 32 clients at once
    answers: list[httpx.Response | BaseException] = [None] * len(files)  # type: ignore[list-item]
    start = threading.Barrier(len(files))

    def client(i: int, path: Path) -> None:
        start.wait()
        try:
            with path.open("rb") as f:
                answers[i] = httpx.post(
                    f"{url}/v1/transcribe", files={"file": (path.name, f)}, timeout=600
                )
        except BaseException as exc:  # a reset connection fails the test below
            answers[i] = exc

    threads = [threading.Thread(target=client, args=(i, p)) for i, p in enumerate(files)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [a for a in answers if isinstance(a, BaseException)]
    assert not errors, errors
    statuses = [a.status_code for a in answers if isinstance(a, httpx.Response)]
    for answer in answers:
        assert isinstance(answer, httpx.Response)
        status = answer.status_code
        assert status < 500 or status == 503, (status, answer.text)
        if status in (429, 503):
            assert int(answer.headers["retry-after"]) > 0
            assert answer.json()["error"]["code"] in {"overloaded", "unavailable"}
        if status >= 400:
            assert answer.json()["error"]["message"]
    # The garbage is refused as bad input; the audio is transcribed (or told to come back).
    assert {s for s in statuses[:16]} <= {415, 422, 503}
    assert {s for s in statuses[16:]} <= {200, 503} and 200 in statuses[16:]
    assert httpx.get(f"{url}/readyz", timeout=30).status_code == 200
    deadline = time.monotonic() + 30
    while list(spool.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(spool.iterdir()) == []


def test_a_client_sending_one_byte_a_second_is_cut_off(url: str, spool: Path) -> None:
    parts = urlsplit(url)
    boundary = "hark-slow"
    head = (
        f"POST /v1/transcribe HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        "Content-Length: 100000\r\nConnection: close\r\n\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    ).encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=120) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        answer = b""
        for _ in range(120):
            with contextlib.suppress(OSError):  # closed by the server after its answer
                sock.send(b"x")
            time.sleep(1)
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                continue
            answer += chunk
            if not chunk or b"\r\n\r\n" in answer:
                break
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.split()[1] == b"408", answer[:500]
    assert b"upload_timeout" in answer or b"\r\n\r\n" in answer
    assert httpx.get(f"{url}/readyz", timeout=30).status_code == 200
    deadline = time.monotonic() + 10
    while list(spool.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(spool.iterdir()) == []


def test_a_file_with_many_channels_in_split_mode_gets_a_clear_4xx(url: str, tmp_path: Path) -> None:
    path = many_channels(tmp_path / "sixteen.wav", 16)
    with path.open("rb") as f:
        r = httpx.post(
            f"{url}/v1/transcribe",
            files={"file": ("sixteen.wav", f)},
            data={"channels": "split"},
            timeout=120,
        )
    message = assert_error(r, 422, "too_many_channels")["error"]["message"]
    assert "16 audio channels" in message and "channels=mix" in message
    with path.open("rb") as f:
        mixed = httpx.post(f"{url}/v1/transcribe", files={"file": ("sixteen.wav", f)}, timeout=120)
    assert mixed.status_code == 200, mixed.text
