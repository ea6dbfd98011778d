"""Categories and roles on `POST /v1/transcribe` (the HTTP layer over a backend that replies)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from hark_serving.serve.api import build_api
from hark_serving.serve.messages import ModelStatus, TranscribeReply, UploadJob
from hark_serving.serve.metrics import CATEGORY_MATCHES, IngressMetrics, MemoryMetricsAPI
from hark_serving.serve.settings import ServeSettings
from tests.unit.analytics.calls import seg, transcript

WAV = ("a.wav", b"RIFF....WAVEfmt " + b"\0" * 64, "audio/wav")
RULES = {
    "categories": [
        {"name": "long-silence", "alert": True, "all": [{"non_talk": {"min_seconds": 10}}]},
        {"name": "apology", "all": [{"keyword": {"role": "agent", "phrases": ["sorry"]}}]},
    ]
}


class CallBackend:
    def __init__(self) -> None:
        self.jobs: list[UploadJob] = []

    async def transcribe(self, job: UploadJob) -> TranscribeReply:
        self.jobs.append(job)
        segs = [seg(0, 5, text="Hello"), seg(20, 30, "customer", text="Hi", emotion="ANGRY")]
        return TranscribeReply(transcript=transcript(segs, 30))

    async def process_item(self, req: object, rid: str) -> object:
        raise AssertionError("not used")

    async def model_status(self) -> ModelStatus:
        raise AssertionError("not used")


def client(backend: CallBackend, recorded: MemoryMetricsAPI | None = None) -> TestClient:
    metrics = IngressMetrics(recorded or MemoryMetricsAPI())
    api = build_api(backend, ServeSettings(max_upload_bytes=4096), metrics)  # type: ignore[arg-type]
    return TestClient(api, raise_server_exceptions=False)


def test_categories_field_fills_the_call_and_counts_alerts() -> None:
    backend, recorded = CallBackend(), MemoryMetricsAPI()
    r = client(backend, recorded).post(
        "/v1/transcribe",
        files={"file": WAV},
        data={"channels": "split", "roles": "Agent,Customer", "categories": json.dumps(RULES)},
    )
    assert r.status_code == 200, r.text
    call = r.json()["call"]
    assert call["categories"]["matched"] == ["long-silence"]
    assert call["categories"]["details"]["long-silence"] == {
        "points": [{"start": 5.0, "end": 20.0}],
        "alert": True,
    }
    assert backend.jobs[0].options.roles == ("agent", "customer")
    assert recorded.value(CATEGORY_MATCHES, category="long-silence") == 1


def test_yaml_rules_on_a_mixed_file_ask_for_a_one_role_report() -> None:
    backend = CallBackend()
    r = client(backend).post(
        "/v1/transcribe",
        files={"file": WAV},
        data={"categories": "- name: apology\n  all: [{keyword: {phrases: [hello]}}]\n"},
    )
    assert r.status_code == 200, r.text
    assert backend.jobs[0].options.roles == ("speaker",)


def test_bad_rules_and_roles_are_a_422_naming_the_field() -> None:
    backend = CallBackend()
    c = client(backend)
    bad = {"categories": [{"name": "x", "all": [{"sentiment": {"below": 2}}]}]}
    r = c.post("/v1/transcribe", files={"file": WAV}, data={"categories": json.dumps(bad)})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_option"
    assert "categories: category 'x': all[0].sentiment.below" in r.json()["error"]["message"]
    r = c.post("/v1/transcribe", files={"file": WAV}, data={"roles": "a b"})
    assert r.status_code == 422 and "roles: role 'a b'" in r.json()["error"]["message"]
    assert backend.jobs == []


def test_openai_verbose_json_carries_the_call_report_with_split_channels() -> None:
    backend = CallBackend()
    c = client(backend)
    r = c.post(
        "/v1/audio/transcriptions",
        files={"file": WAV},
        data={"response_format": "verbose_json", "channels": "split", "roles": "agent,customer"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["call"]["roles"] == {"0": "agent", "1": "customer"}
    assert body["call"]["talk_time"]["customer"] == {"seconds": 10.0, "share": 0.667}
    assert [s["role"] for s in body["segments"]] == ["agent", "customer"]
    assert (backend.jobs[0].options.channels, backend.jobs[0].options.roles) == (
        "split",
        ("agent", "customer"),
    )
    c.post("/v1/audio/transcriptions", files={"file": WAV}, data={"response_format": "json"})
    assert backend.jobs[1].options.channels == "mix" and backend.jobs[1].options.roles is None


def test_an_item_request_with_bad_categories_is_refused_before_any_work() -> None:
    backend = CallBackend()
    bad = [{"name": "x", "all": [{"emotion": {"in": ["FURIOUS"]}}]}]
    body = {"input_uri": "s3://in/a.wav", "output_uri": "s3://out/a.wav", "categories": bad}
    r = client(backend).post("/v1/items", json=body)
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert message.startswith("invalid item request: categories: ")
    assert "category 'x': all[0].emotion.in[0]" in message


def test_item_requests_carry_rules_as_plain_data() -> None:
    from hark_serving.runs.itemspec import ItemRequest

    rules = [{"name": "quiet", "alert": True, "all": [{"non_talk": {"min_seconds": 5}}]}]
    req = ItemRequest(input_uri="s3://in/a.wav", output_uri="s3://out/a.wav", categories=rules)
    again = ItemRequest.model_validate_json(req.model_dump_json())
    parsed = again.rules()
    assert parsed is not None and [c.name for c in parsed.categories] == ["quiet"]
    assert ItemRequest(input_uri="s3://in/a.wav", output_uri="s3://out/a.wav").rules() is None


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("s3://out/qa/_hark/ns.job/alerts", "must be a prefix"),
        ("s3://elsewhere/_hark/ns.job/alerts/", "in the output's bucket"),
        ("s3://out/" + "a/" * 495, "its alert records: the key is 1027 bytes"),
        ("https://out/alerts/", "expected s3://"),
    ],
)
def test_an_alert_outbox_must_be_a_prefix_in_the_outputs_bucket(prefix: str, message: str) -> None:
    from hark_serving.errors import InvalidUri
    from hark_serving.runs.items import outbox_of
    from hark_serving.runs.itemspec import ItemRequest
    from hark_serving.storage.uris import S3Uri

    output = S3Uri("out", "qa/a.wav")
    req = ItemRequest(input_uri="s3://in/a.wav", output_uri="s3://out/qa/a.wav")
    assert outbox_of(req, output) is None
    good = req.model_copy(update={"alerts_prefix": "s3://out/qa/_hark/ns.job/alerts/"})
    assert outbox_of(good, output) == S3Uri("out", "qa/_hark/ns.job/alerts/")
    with pytest.raises(InvalidUri, match=message):
        outbox_of(req.model_copy(update={"alerts_prefix": prefix}), output)
