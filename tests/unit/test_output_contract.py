"""One output contract: the `hark.error/v1` record (model, shipped schema, one writer)
and one definition of "current" for `hark transcribe`, `/v1/items` and the operator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hark_serving.errors import CorruptAudio
from hark_serving.transcript.error_record import (
    ErrorRecord,
    error_json_schema,
    generated_schema,
    render_error_record,
    validate_error_record,
)
from hark_serving.transcript.outputs import SOURCE_ETAG_METADATA, is_current, recorded_etag


def test_the_shipped_schema_is_the_models() -> None:
    assert error_json_schema() == generated_schema()
    assert error_json_schema()["required"] == [
        "schema", "code", "message", "attempts", "source", "job", "created_at",
    ]  # fmt: skip


def test_a_record_renders_valid_with_the_source_etag_in_its_metadata() -> None:
    record = ErrorRecord.of(
        "corrupt_audio", "a.wav: cannot decode", uri="s3://in/a.wav", etag='"abc"', attempts=2,
        job="ns/j",
    )  # fmt: skip
    body, content_type, metadata = render_error_record(record)
    doc = json.loads(body)
    assert doc["schema"] == "hark.error/v1" and doc["source"] == {
        "uri": "s3://in/a.wav",
        "etag": "abc",
    }
    assert (doc["attempts"], doc["job"], content_type) == (2, "ns/j", "application/json")
    assert metadata == {SOURCE_ETAG_METADATA: "abc"}
    assert ErrorRecord.model_validate(doc) == record


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"schema": "hark.error/v2"}, "schema"),
        ({"attempts": 0}, "attempts"),
        ({"code": "Not A Code"}, "code"),
        ({"extra": 1}, "(root)"),
    ],
)
def test_the_schema_refuses_what_the_model_refuses(change: dict[str, object], where: str) -> None:
    good = json.loads(render_error_record(ErrorRecord.of("x", "m", uri="u", etag=None))[0])
    validate_error_record(good)
    with pytest.raises(ValueError, match=where):
        validate_error_record({**good, **change})


def test_current_means_the_recorded_etag_equals_the_inputs() -> None:
    assert is_current('"abc"', "abc") and is_current("abc", '"abc"')
    assert not is_current("abc", "abd")
    assert not is_current(None, "abc") and not is_current("", "")  # nothing recorded: not current
    assert recorded_etag({SOURCE_ETAG_METADATA: "abc"}) == "abc" and recorded_etag(None) is None


def test_the_three_writers_write_the_same_valid_record(tmp_path: Path) -> None:
    """`hark transcribe`, `/v1/items` and the operator: one document, one metadata."""
    import asyncio

    from hark_operator.clients.storage import ErrorRecorder
    from hark_operator.jobs.work import WorkItem
    from hark_serving.runs.items import write_error_object
    from hark_serving.runs.itemspec import ItemError, ItemRequest, ItemResult
    from hark_serving.runs.local import write_error
    from hark_serving.storage.locations import InputRef, LocalOutput
    from hark_serving.storage.uris import S3Uri
    from tests.unit.operator.fakes import FakeStore, FakeStores

    error = CorruptAudio("cannot decode", subject="s3://in/a.wav")
    write_error(LocalOutput(tmp_path), InputRef("s3://in/a.wav", "a.wav", 5, "e1"), error, 2)
    local_doc = json.loads((tmp_path / "a.wav.error.json").read_text())

    store = FakeStore()
    req = ItemRequest(input_uri="s3://in/a.wav", output_uri="s3://out/a.wav", attempt=2, job="ns/j")
    write_error_object(store, S3Uri("out", "a.wav"), req, error, "e1")  # type: ignore[arg-type]
    item_obj = store.objects[("out", "a.wav.error.json")]

    other = FakeStore()
    result = ItemResult(
        status="failed", input_uri=req.input_uri, output_uri="s3://out/a.wav.json",
        error=ItemError(code="corrupt_audio", message=str(error)),
    )  # fmt: skip
    recorder = ErrorRecorder(FakeStores(other))  # type: ignore[arg-type]
    asyncio.run(recorder.record("ns/j", WorkItem(req.output_uri, req, etag="e1"), result, 2))
    operator_obj = other.objects[("out", "a.wav.error.json")]

    docs = [local_doc, json.loads(item_obj.data), json.loads(operator_obj.data)]
    for doc in docs:
        validate_error_record(doc)
        doc.pop("created_at")
    assert docs[1] == docs[2] == {
        "schema": "hark.error/v1", "code": "corrupt_audio", "message": str(error), "attempts": 2,
        "source": {"uri": "s3://in/a.wav", "etag": "e1"}, "job": "ns/j",
    }  # fmt: skip
    assert docs[0] == {**docs[1], "job": None}  # a local run has no job
    assert item_obj.metadata == operator_obj.metadata == {SOURCE_ETAG_METADATA: "e1"}
