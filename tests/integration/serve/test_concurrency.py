"""Many concurrent requests: all succeed, each equals its single-request result, batches mix them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from .conftest import app_args, deploy, ray_metric_sum

pytestmark = pytest.mark.integration

# Mixed lengths (4 to 18.5 s), mono and stereo, two sample rates, silence included.
FILES = [
    "one_sentence_16k.wav",
    "speech_yue_16k.wav",
    "speech_ko_16k.wav",
    "speech_ja_16k.wav",
    "silence_10s.wav",
    "speech_zh_16k.wav",
    "call_stereo_8k.wav",
    "speech_en_16k.wav",
]
CONCURRENCY = 64


@pytest.fixture(scope="module")
def url(serve_instance: str, tiny_model_dir: Path) -> Iterator[str]:
    # The tiny model answers in milliseconds, so windows would rarely fill on their own;
    # a longer wait lets segments of many requests meet, as a busy real model makes them.
    # float32: equal results whatever shares a batch is the exact path's promise; int8 (the
    # CPU default) and bfloat16 may move a token with their batch (docs/precision.md).
    args = app_args(tiny_model_dir, worker_threads=2, batch_wait_seconds=0.5, precision="float32")
    with deploy(serve_instance, args) as base:
        yield base


def transcribe(url: str, path: Path) -> dict[str, object]:
    r = httpx.post(
        f"{url}/v1/transcribe",
        files={"file": (path.name, path.read_bytes())},
        timeout=600,
    )
    assert r.status_code == 200, f"{path.name}: {r.status_code} {r.text}"
    doc: dict[str, object] = r.json()
    return doc


def segments(doc: dict[str, object]) -> list[tuple[float, float, str]]:
    return [(s["start"], s["end"], s["raw"]) for s in doc["segments"]]  # type: ignore[attr-defined,index]


def batches_run(url: str) -> float:
    """Model batches the Transcriber replicas have run, as exported on Ray's metrics port.

    Replicas export every second or so: read until two reads a few seconds apart agree.
    """
    last = -1.0
    while True:
        now = ray_metric_sum("ray_hark_model_batches_total", deployment="Transcriber")
        if now == last:
            return now
        last = now
        time.sleep(3)


def test_concurrent_requests_all_succeed_and_equal_single_requests(
    url: str, audio_dir: Path
) -> None:
    alone = {name: segments(transcribe(url, audio_dir / name)) for name in FILES}
    before = batches_run(url)

    names = [FILES[i % len(FILES)] for i in range(CONCURRENCY)]
    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        docs = list(pool.map(lambda n: transcribe(url, audio_dir / n), names))

    for name, doc in zip(names, docs, strict=True):
        assert segments(doc) == alone[name], name
    # Fewer model batches than requests with speech: by pigeonhole, some batch held
    # segments of more than one request.
    with_speech = sum(1 for n in names if alone[n])
    assert 0 < batches_run(url) - before < with_speech
