"""Uploads through the real Serve app: every format, subtitles, OpenAI clients, bad input."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from hark_serving.engine.priority import BACKGROUND
from hark_serving.transcript.schema import Transcript, validate_result
from tests.fixtures import audio
from tests.fixtures.audio import AudioSpec

from .conftest import app_args, assert_error, deploy, ray_metric_sum

pytestmark = pytest.mark.integration

MAX_UPLOAD = 8 * 1024 * 1024  # the largest corpus file is 6.5 MB
MAX_SECONDS = 30.0  # the longest corpus file is 18.5 s


@pytest.fixture(scope="module")
def url(serve_instance: str, tiny_model_dir: Path) -> Iterator[str]:
    # float32: the OpenAI tests compare answers for the same file across requests, equal
    # whatever shares a batch only on the exact path (int8, the CPU default, may move a
    # token with its batch: docs/precision.md).
    args = app_args(
        tiny_model_dir,
        max_upload_bytes=MAX_UPLOAD,
        max_audio_seconds=MAX_SECONDS,
        precision="float32",
    )
    with deploy(serve_instance, args) as base:
        yield base


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=120) as client:
        yield client


def post(http: httpx.Client, path: Path, **data: Any) -> httpx.Response:
    return http.post("/v1/transcribe", files={"file": (path.name, path.read_bytes())}, data=data)


def still_serving(http: httpx.Client, audio_dir: Path) -> None:
    """A good request right after a bad one: the replicas are still up."""
    r = post(http, audio_dir / "one_sentence_16k.wav")
    assert r.status_code == 200, r.text


def test_every_format_transcribes_to_a_valid_result(
    good_file: str, http: httpx.Client, audio_dir: Path, corpus: dict[str, AudioSpec]
) -> None:
    name = good_file
    spec = corpus[name]
    r = post(http, audio_dir / name)
    assert r.status_code == 200, r.text
    doc = r.json()
    validate_result(doc)
    source = doc["source"]
    assert source["uri"] == name
    assert (source["sample_rate"], source["channels"]) == (spec.sample_rate, spec.channels)
    assert source["duration"] == pytest.approx(spec.duration, abs=0.2)
    assert source["bytes"] == (audio_dir / name).stat().st_size
    if name != "silence_10s.wav":
        assert doc["segments"], "speech gives at least one segment"


def _srt_cues(text: str) -> list[tuple[float, float, str]]:
    cues = []
    for block in text.strip().split("\n\n"):
        lines = block.split("\n")
        assert lines[0].isdigit(), block
        m = re.fullmatch(r"(\d+):(\d\d):(\d\d),(\d{3}) --> (\d+):(\d\d):(\d\d),(\d{3})", lines[1])
        assert m, lines[1]
        g = [int(x) for x in m.groups()]
        start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
        end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
        cues.append((start, end, " ".join(lines[2:])))
    return cues


def _vtt_cues(text: str) -> list[tuple[float, float, str]]:
    header, _, body = text.partition("\n\n")
    assert header.strip() == "WEBVTT"
    cues = []
    for block in body.strip().split("\n\n"):
        lines = block.split("\n")
        m = re.fullmatch(r"(\d+):(\d\d):(\d\d)\.(\d{3}) --> (\d+):(\d\d):(\d\d)\.(\d{3})", lines[0])
        assert m, lines[0]
        g = [int(x) for x in m.groups()]
        start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
        end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
        cues.append((start, end, " ".join(lines[1:])))
    return cues


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitles_parse_back_to_the_segments_of_the_json(
    fmt: str, http: httpx.Client, audio_dir: Path
) -> None:
    path = audio_dir / "speech_en_16k.wav"
    transcript = Transcript.model_validate(post(http, path).json())
    r = post(http, path, format=fmt)
    assert r.status_code == 200
    media = {"srt": "application/x-subrip", "vtt": "text/vtt"}[fmt]
    assert r.headers["content-type"].startswith(media)
    cues = _srt_cues(r.text) if fmt == "srt" else _vtt_cues(r.text)
    spoken = [s for s in transcript.segments if s.text]
    assert [(c[0], c[1]) for c in cues] == [(s.start, s.end) for s in spoken]
    for (_, _, text), seg in zip(cues, spoken, strict=True):
        assert " ".join(seg.text.split()) in text.replace("&amp;", "&").replace("&lt;", "<")


def test_txt_is_the_segment_texts(http: httpx.Client, audio_dir: Path) -> None:
    path = audio_dir / "speech_en_16k.wav"
    transcript = Transcript.model_validate(post(http, path).json())
    r = post(http, path, format="txt")
    assert r.text.splitlines() == [s.text for s in transcript.segments if s.text]


def test_options_reach_the_model(http: httpx.Client, audio_dir: Path) -> None:
    doc = post(
        http,
        audio_dir / "call_stereo_8k.wav",
        language="en",
        use_itn="false",
        timestamps="word",
        channels="split",
    ).json()
    assert doc["options"] == {
        "language": "en",
        "use_itn": False,
        "timestamps": "word",
        "channels": "split",
    }
    assert {s["channel"] for s in doc["segments"]} == {0, 1}
    assert all(s["words"] is not None for s in doc["segments"])


# -- the OpenAI-compatible endpoint, through the official client ------------------------


@pytest.fixture(scope="module")
def oai(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="not-needed", max_retries=0)


def test_openai_json_and_text(oai: openai.OpenAI, http: httpx.Client, audio_dir: Path) -> None:
    path = audio_dir / "speech_en_16k.wav"
    expected = post(http, path).json()["text"]
    with open(path, "rb") as f:
        result = oai.audio.transcriptions.create(model="whisper-1", file=f)
    assert result.text == expected
    with open(path, "rb") as f:
        text = oai.audio.transcriptions.create(model="whisper-1", file=f, response_format="text")
    assert text.strip() == expected


def test_openai_verbose_json_carries_segments_words_and_rich_fields(
    oai: openai.OpenAI, audio_dir: Path
) -> None:
    path = audio_dir / "speech_en_16k.wav"
    with open(path, "rb") as f:
        result = oai.audio.transcriptions.create(
            model="whisper-1",
            file=f,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    assert result.duration == pytest.approx(18.5, abs=0.2)
    assert result.segments and result.words is not None
    first = result.segments[0]
    assert first.id == 0 and first.end > first.start and first.tokens == []
    extras = first.model_extra or {}
    assert set(extras) >= {"emotion", "events"}
    assert isinstance(extras["events"], list)
    body = result.model_dump()
    assert set(body) >= {"task", "language", "duration", "text", "segments", "words"}


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_openai_subtitles(oai: openai.OpenAI, audio_dir: Path, fmt: str) -> None:
    with open(audio_dir / "speech_en_16k.wav", "rb") as f:
        text = oai.audio.transcriptions.create(model="whisper-1", file=f, response_format=fmt)  # type: ignore[call-overload]
    cues = _srt_cues(text) if fmt == "srt" else _vtt_cues(text)
    assert cues


def test_openai_errors_are_api_errors_with_our_body(oai: openai.OpenAI, audio_dir: Path) -> None:
    with (
        open(audio_dir / "speech_en_16k.wav", "rb") as f,
        pytest.raises(openai.UnprocessableEntityError) as info,
    ):
        oai.audio.transcriptions.create(model="whisper-1", file=f, language="xx")
    assert info.value.body is not None
    assert info.value.body["code"] == "invalid_option"  # type: ignore[index]


# -- bad input: a clear 4xx, and the replicas keep serving -------------------------------


def test_broken_files_get_their_code(
    broken_file: str, http: httpx.Client, audio_dir: Path, corpus: dict[str, AudioSpec]
) -> None:
    name = broken_file
    code = corpus[name].broken
    assert code is not None
    status = {"empty_file": 422, "unsupported_format": 415}.get(code, 422)
    body = assert_error(post(http, audio_dir / name), status, code)
    assert name in body["error"]["message"]
    still_serving(http, audio_dir)


def test_an_upload_over_the_size_limit_is_413(http: httpx.Client, audio_dir: Path) -> None:
    big = b"RIFF" + b"\0" * (MAX_UPLOAD + 1024 * 1024)
    r = http.post("/v1/transcribe", files={"file": ("big.wav", big)})
    assert_error(r, 413, "too_large")
    still_serving(http, audio_dir)


def test_audio_over_the_duration_limit_is_413(
    http: httpx.Client, audio_dir: Path, tmp_path: Path
) -> None:
    long = tmp_path / "long.wav"
    one = audio_dir / "speech_en_16k.wav"
    audio.run("sox", one, one, long)  # 37 s > 30 s
    body = assert_error(post(http, long), 413, "too_long")
    assert "30 s limit" in body["error"]["message"]
    still_serving(http, audio_dir)


@pytest.mark.parametrize(
    "data, files, status, code",
    [
        ({"language": "klingon"}, "file", 422, "invalid_option"),
        ({"format": "docx"}, "file", 422, "invalid_option"),
        ({"timestamps": "phoneme"}, "file", 422, "invalid_option"),
        ({}, "audio", 422, "invalid_input"),
    ],
)
def test_bad_fields_are_4xx(
    http: httpx.Client,
    audio_dir: Path,
    data: dict[str, str],
    files: str,
    status: int,
    code: str,
) -> None:
    path = audio_dir / "one_sentence_16k.wav"
    r = http.post("/v1/transcribe", files={files: (path.name, path.read_bytes())}, data=data)
    assert_error(r, status, code)
    still_serving(http, audio_dir)


def test_other_bodies_and_routes_answer_in_the_error_shape(http: httpx.Client) -> None:
    assert_error(http.post("/v1/transcribe", json={"file": "x"}), 415, "unsupported_media_type")
    assert_error(http.get("/v1/nothing"), 404, "route_not_found")
    assert_error(http.post("/v1/items", content=b"{"), 422, "invalid_input")


def test_probes_and_metrics(http: httpx.Client, audio_dir: Path) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz").json()
    assert ready["status"] == "ready" and ready["model"]["name"] == "SenseVoiceSmall"
    assert_error(http.get("/metrics"), 404, "route_not_found")  # on Ray's port instead
    assert post(http, audio_dir / "one_sentence_16k.wav").status_code == 200
    # The replicas export what they counted every second or so.
    wanted = (
        ("ray_hark_http_requests_total", {"route": "/v1/transcribe", "code": "200"}),
        ("ray_hark_model_batch_segments_count", {"deployment": "Transcriber"}),
        ("ray_hark_audio_seconds_processed_total", {"kind": "upload"}),
        ("ray_hark_model_load_seconds", {"deployment": "Transcriber"}),
    )
    deadline = time.monotonic() + 60
    while not all(ray_metric_sum(n, **labels) > 0 for n, labels in wanted):
        assert time.monotonic() < deadline, [(n, ray_metric_sum(n, **lab)) for n, lab in wanted]
        time.sleep(1)


def _thread_niceness(pid: int) -> list[int]:
    values = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            # Field 19 of stat, counted after the ")" that ends the command name.
            values.append(int((task / "stat").read_text().rsplit(")", 1)[1].split()[16]))
    return values


def test_the_workers_decode_threads_yield_the_cpu_to_the_model(
    http: httpx.Client, audio_dir: Path
) -> None:
    import ray

    still_serving(http, audio_dir)  # the Worker's pool threads exist once it has prepared a file

    def pid_of(deployment: str) -> int:
        [name] = [
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["namespace"] == "serve" and f"#{deployment}#" in a["name"]
        ]
        actor = ray.get_actor(name, namespace="serve")
        return int(ray.get(actor.__ray_call__.remote(lambda _self: os.getpid())))

    worker, transcriber = pid_of("Worker"), pid_of("Transcriber")
    assert BACKGROUND in _thread_niceness(worker)
    assert BACKGROUND not in _thread_niceness(transcriber)
