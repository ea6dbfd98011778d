"""The HTTP layer over a fake backend: statuses, error bodies, auth, limits, metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hark_serving.runs.itemspec import ItemError, ItemRequest, ItemResult
from hark_serving.serve.api import build_api
from hark_serving.serve.messages import (
    Failure,
    ItemReply,
    ModelStatus,
    TranscribeReply,
    UploadJob,
)
from hark_serving.serve.metrics import (
    HTTP_ERRORS,
    HTTP_IN_FLIGHT,
    HTTP_LATENCY,
    HTTP_REQUESTS,
    IngressMetrics,
    MemoryMetricsAPI,
)
from hark_serving.serve.settings import ServeSettings
from hark_serving.transcript.schema import Transcript

from .conftest import make_transcript

WAV = ("a.wav", b"RIFF....WAVEfmt " + b"\0" * 64, "audio/wav")


class FakeBackend:
    def __init__(self) -> None:
        self.jobs: list[UploadJob] = []
        self.items: list[ItemRequest] = []
        self.failure: Failure | None = None
        self.item_result: ItemResult | None = None
        self.ready: bool | None = True

    async def transcribe(self, job: UploadJob) -> TranscribeReply:
        self.jobs.append(job)
        if self.failure:
            return TranscribeReply(failure=self.failure)
        return TranscribeReply(transcript=make_transcript())

    async def process_item(self, req: ItemRequest, rid: str) -> ItemReply:
        self.items.append(req)
        assert self.item_result is not None
        return ItemReply(self.item_result)

    async def model_status(self) -> ModelStatus:
        if self.ready is None:
            await asyncio.sleep(10)
        return ModelStatus(bool(self.ready), make_transcript().model, 1.5)


def settings(**kw: Any) -> ServeSettings:
    base: dict[str, Any] = {"max_upload_bytes": 4096, "ready_timeout_seconds": 0.2}
    return ServeSettings(**(base | kw))


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def client(backend: FakeBackend) -> TestClient:
    return TestClient(build_api(backend, settings()), raise_server_exceptions=False)


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code and body["error"]["message"]


def test_transcribe_returns_the_transcript_and_passes_the_options(
    client: TestClient, backend: FakeBackend
) -> None:
    r = client.post(
        "/v1/transcribe",
        files={"file": WAV},
        data={"language": "en", "use_itn": "false", "timestamps": "word"},
    )
    assert r.status_code == 200
    Transcript.model_validate(r.json())
    job = backend.jobs[0]
    assert (job.filename, job.options.language, job.options.use_itn) == ("a.wav", "en", False)
    assert job.options.timestamps == "word" and len(job.md5) == 32
    assert r.headers["x-request-id"] == job.request_id


@pytest.mark.parametrize(
    "fmt, media", [("srt", "application/x-subrip"), ("vtt", "text/vtt"), ("txt", "text/plain")]
)
def test_transcribe_renders_the_format_asked_for(client: TestClient, fmt: str, media: str) -> None:
    r = client.post("/v1/transcribe", files={"file": WAV}, data={"format": fmt})
    assert r.status_code == 200 and r.headers["content-type"].startswith(media)
    assert "hello world" in r.text


@pytest.mark.parametrize(
    "data, files, status, code",
    [
        ({"language": "xx"}, {"file": WAV}, 422, "invalid_option"),
        ({"format": "docx"}, {"file": WAV}, 422, "invalid_option"),
        ({"use_itn": "maybe"}, {"file": WAV}, 422, "invalid_option"),
        ({}, {"audio": WAV}, 422, "invalid_input"),
        ({}, {"file": ("a.wav", b"", "audio/wav")}, 422, "empty_file"),
        ({}, {"file": ("a.wav", b"x" * 5000, "audio/wav")}, 413, "too_large"),
    ],
)
def test_bad_uploads_get_a_clear_4xx(
    client: TestClient,
    backend: FakeBackend,
    data: dict[str, str],
    files: dict[str, Any],
    status: int,
    code: str,
) -> None:
    assert_error(client.post("/v1/transcribe", files=files, data=data), status, code)
    assert backend.jobs == []  # refused before any work was sent on


def test_a_body_that_is_not_multipart_is_unsupported_media(client: TestClient) -> None:
    assert_error(client.post("/v1/transcribe", json={"file": "x"}), 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "code, status",
    [("corrupt_audio", 422), ("unsupported_format", 415), ("too_long", 413), ("internal", 500)],
)
def test_failures_from_the_worker_map_through_the_table(
    client: TestClient, backend: FakeBackend, code: str, status: int
) -> None:
    backend.failure = Failure(code, "a.wav: it went wrong")
    r = client.post("/v1/audio/transcriptions", files={"file": WAV}, data={"model": "whisper-1"})
    assert_error(r, status, code)


def test_openai_json_is_only_the_text(client: TestClient) -> None:
    r = client.post("/v1/audio/transcriptions", files={"file": WAV}, data={"model": "whisper-1"})
    assert r.json() == {"text": "hello world"}


def test_item_results_map_their_error_code_to_the_status(
    client: TestClient, backend: FakeBackend
) -> None:
    req = {"input_uri": "s3://in/a.wav", "output_uri": "s3://out/a.wav"}
    backend.item_result = ItemResult(status="succeeded", input_uri="s3://in/a.wav", output_uri="o")
    assert client.post("/v1/items", json=req).status_code == 200
    backend.item_result = ItemResult(
        status="failed",
        input_uri="s3://in/a.wav",
        output_uri="o",
        error=ItemError(code="bucket_not_allowed", message="no"),
    )
    r = client.post("/v1/items", json=req)
    assert r.status_code == 403
    assert r.json()["error"] == {"code": "bucket_not_allowed", "message": "no"}
    assert r.json()["status"] == "failed"


def test_a_malformed_item_request_is_refused(client: TestClient, backend: FakeBackend) -> None:
    assert_error(client.post("/v1/items", json={"input_uri": "x"}), 422, "invalid_input")
    assert_error(client.post("/v1/items", content=b"{not json"), 422, "invalid_input")
    assert backend.items == []


def test_unknown_routes_and_methods_answer_in_the_error_shape(client: TestClient) -> None:
    assert_error(client.get("/v2/nothing"), 404, "route_not_found")
    assert_error(client.get("/v1/transcribe"), 405, "method_not_allowed")


def test_readiness_follows_the_model(client: TestClient, backend: FakeBackend) -> None:
    assert client.get("/readyz").json()["status"] == "ready"
    backend.ready = False
    assert_error(client.get("/readyz"), 503, "model_unavailable")
    backend.ready = None  # no Transcriber answers in time
    assert_error(client.get("/readyz"), 503, "model_unavailable")
    assert client.get("/healthz").json() == {"status": "ok"}


def test_a_token_guards_the_work_but_not_the_probes(backend: FakeBackend) -> None:
    client = TestClient(build_api(backend, settings(api_token="s3cret")))
    r = client.post("/v1/transcribe", files={"file": WAV})
    assert_error(r, 401, "unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")
    wrong = {"Authorization": "Bearer nope"}
    assert_error(
        client.post("/v1/transcribe", files={"file": WAV}, headers=wrong), 401, "unauthorized"
    )
    ok = {"Authorization": "Bearer s3cret"}
    assert client.post("/v1/transcribe", files={"file": WAV}, headers=ok).status_code == 200
    for path in ("/healthz", "/readyz"):
        assert client.get(path).status_code == 200


def test_every_answer_is_recorded_by_route_status_and_error(backend: FakeBackend) -> None:
    api = MemoryMetricsAPI()
    client = TestClient(build_api(backend, settings(), IngressMetrics(api)))
    client.post("/v1/transcribe", files={"file": WAV})
    client.post("/v1/transcribe", files={"file": WAV}, data={"language": "xx"})
    client.get("/nowhere")
    route = "/v1/transcribe"
    assert api.value(HTTP_REQUESTS, route=route, method="POST", code="200") == 1
    assert api.value(HTTP_REQUESTS, route=route, method="POST", code="422") == 1
    assert api.value(HTTP_ERRORS, route=route, error="invalid_option") == 1
    assert api.value(HTTP_REQUESTS, route="other", method="GET", code="404") == 1
    assert api.value(HTTP_ERRORS, route="other", error="route_not_found") == 1
    assert len(api.observed(HTTP_LATENCY, route=route)) == 2
    assert api.value(HTTP_IN_FLIGHT, route=route) == 0  # every request answered


def test_there_is_no_metrics_route(client: TestClient) -> None:
    """Metrics live on Ray's metrics port, not on the public HTTP API."""
    assert_error(client.get("/metrics"), 404, "route_not_found")


def test_a_client_request_id_is_used_and_a_missing_one_is_made(
    client: TestClient, backend: FakeBackend
) -> None:
    r = client.post("/v1/transcribe", files={"file": WAV}, headers={"X-Request-ID": "abc-123"})
    assert backend.jobs[-1].request_id == "abc-123"
    assert "x-request-id" not in r.headers  # the client knows it; Serve's proxy echoes it
    r = client.get("/healthz")
    assert len(r.headers["x-request-id"]) == 32


def test_a_bug_in_a_route_is_a_500_in_the_error_shape(backend: FakeBackend) -> None:
    async def broken(job: UploadJob) -> TranscribeReply:
        raise RuntimeError("boom")

    backend.transcribe = broken  # type: ignore[method-assign]
    client = TestClient(build_api(backend, settings()), raise_server_exceptions=False)
    assert_error(client.post("/v1/transcribe", files={"file": WAV}), 500, "internal")
    assert client.get("/healthz").status_code == 200
