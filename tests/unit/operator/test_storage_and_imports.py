"""Profile credentials from Secrets, the operator's own .error.json, the job summary,
and the promise that the operator stays light."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hark_operator.clients.storage import ErrorRecorder, Stores
from hark_operator.errors import JobConfigError
from hark_operator.jobs.summary import SummaryTally, summary_uri
from hark_operator.jobs.work import WorkItem
from hark_operator.resource.models import Counts, JobRef, JobSpec
from hark_serving.runs.itemspec import ItemError, ItemRequest, ItemResult
from hark_serving.storage.profiles import ProfilesFile, StorageProfile, StorageProfiles
from hark_serving.storage.uris import S3Uri

from .fakes import FakeStore, FakeStores, transcript

REPO = Path(__file__).resolve().parents[3]


def profiles() -> StorageProfiles:
    return StorageProfiles(
        ProfilesFile(
            default="minio",
            profiles={
                "minio": StorageProfile(
                    endpointUrl="http://minio:9000", credentialsSecret="s3-keys"
                ),
                "aws": StorageProfile(region="eu-west-1"),
            },
        )
    )


class Secrets:
    def __init__(self, data: dict[str, str] | None, status: int | None = None) -> None:
        self.data, self.status, self.reads = data, status, 0

    async def __call__(self, namespace: str, name: str) -> dict[str, str]:
        self.reads += 1
        assert (namespace, name) == ("hark-system", "s3-keys")
        if self.status is not None:
            raise type("ApiException", (Exception,), {"status": self.status})()
        assert self.data is not None
        return self.data


def test_profile_credentials_come_from_the_secret_in_the_operators_namespace() -> None:
    clock = [0.0]
    secrets = Secrets({"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"})
    stores = Stores(
        profiles(),
        secrets=secrets,
        namespace="hark-system",
        refresh_seconds=60,
        clock=lambda: clock[0],
    )
    store = asyncio.run(stores.store(None))
    assert (store.settings.access_key_id, store.settings.secret_access_key) == ("AK", "SK")
    assert store.settings.endpoint_url == "http://minio:9000"
    asyncio.run(stores.store("minio"))
    assert secrets.reads == 1  # cached...
    clock[0] = 61
    asyncio.run(stores.store("minio"))
    assert secrets.reads == 2  # ...until it is time to pick up rotated keys
    aws = asyncio.run(stores.store("aws"))
    assert aws.settings.access_key_id is None and secrets.reads == 2  # no Secret named: AWS chain
    secrets.data = {"AWS_ACCESS_KEY_ID": "AK2", "AWS_SECRET_ACCESS_KEY": "SK2"}
    stores.forget("minio")  # the store refused the keys: rotated, perhaps
    rotated = asyncio.run(stores.store("minio"))
    assert secrets.reads == 3 and rotated.settings.access_key_id == "AK2"
    stores.close()


@pytest.mark.parametrize(
    ("secrets", "words"),
    [
        (Secrets({"AWS_ACCESS_KEY_ID": "AK"}), "lacks the key AWS_SECRET_ACCESS_KEY"),
        (Secrets(None, status=404), "Secret hark-system/s3-keys .* cannot be read \\(404\\)"),
    ],
)
def test_a_broken_profile_is_a_job_configuration_error(secrets: Secrets, words: str) -> None:
    stores = Stores(profiles(), secrets=secrets, namespace="hark-system")
    with pytest.raises(JobConfigError, match=words):
        asyncio.run(stores.store(None))
    with pytest.raises(JobConfigError, match="unknown storage profile 'gcs'"):
        asyncio.run(stores.store("gcs"))
    stores.close()


def test_a_profile_is_refused_to_a_namespace_it_does_not_list_before_any_secret_is_read() -> None:
    secrets = Secrets({"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"})
    limited = StorageProfile(
        credentialsSecret="s3-keys", readBuckets=("in-b",), namespaces=("callcentre",)
    )
    stores = Stores(
        StorageProfiles(ProfilesFile(default="calls", profiles={"calls": limited})),
        secrets=secrets,
        namespace="hark-system",
    )
    with pytest.raises(JobConfigError, match="'calls' may be used by jobs in callcentre only"):
        asyncio.run(stores.store(None, "marketing"))
    assert secrets.reads == 0
    asyncio.run(stores.store("calls", "callcentre"))
    assert secrets.reads == 1
    stores.close()


def failed(code: str) -> ItemResult:
    return ItemResult(status="failed", input_uri="s3://in-b/a.mp3", output_uri="s3://out-b/a.mp3.json",
                      error=ItemError(code=code, message="it broke"), retryable=True)  # fmt: skip


def item() -> WorkItem:
    req = ItemRequest(input_uri="s3://in-b/a.mp3", output_uri="s3://out-b/a.mp3", job="ns/j")
    return WorkItem(req.output_uri, req, 10, "etag-1")


def test_the_operator_records_a_failure_the_worker_could_not() -> None:
    store = FakeStore()
    recorder = ErrorRecorder(FakeStores(store))  # type: ignore[arg-type]
    asyncio.run(recorder.record("ns/j", item(), failed("timeout"), 3))
    doc = json.loads(store.get_bytes(S3Uri("out-b", "a.mp3.error.json")))
    assert (doc["code"], doc["attempts"], doc["job"]) == ("timeout", 3, "ns/j")
    assert doc["source"] == {"uri": "s3://in-b/a.mp3", "etag": "etag-1"}
    assert store.head_metadata(S3Uri("out-b", "a.mp3.error.json")) == {"hark-source-etag": "etag-1"}
    asyncio.run(recorder.record("ns/j", item(), failed("timeout"), 3))
    assert store.puts["s3://out-b/a.mp3.error.json"] == 1  # already recorded for this ETag
    asyncio.run(
        recorder.record(
            "ns/j",
            WorkItem(
                "s3://out-b/b.mp3",
                item().request.model_copy(update={"output_uri": "s3://out-b/b.mp3"}),
                1,
                "e",
            ),
            failed("not_found"),
            1,
        )
    )
    assert "b.mp3.error.json" not in " ".join(
        store.keys("out-b")
    )  # the input is gone: nothing to report


def test_the_summary_tally_adds_transcripts_and_bounds_failures() -> None:
    tally = SummaryTally()
    tally.add_transcript(transcript(10.0, "en"))
    tally.add_transcript(transcript(4.0, "zh"))
    tally.add_transcript({"source": {}, "summary": {"flags": ["no_speech"]}})
    for i in range(1003):
        tally.add_failure(f"k{i}", "corrupt_audio", "x" * 600)
    spec = JobSpec.model_validate(
        {"input": {"uri": "s3://in-b/p/"}, "output": {"uri": "s3://out-b/q/"}}
    )
    when = datetime(2026, 5, 1, tzinfo=timezone.utc)
    doc = tally.document(JobRef(namespace="ns", name="j"), spec, Counts(total=3, succeeded=3), phase="Succeeded",
                         started=when, finished=when, updated=when)  # fmt: skip
    assert (
        doc["files_summarized"] == 3
        and doc["audio_seconds"] == 14.0
        and doc["speech_seconds"] == 7.0
    )
    assert doc["languages"] == {"en": 5.0, "zh": 2.0} and doc["events"] == {"Speech": 2}
    assert doc["flags"] == {"no_speech": 1}
    assert len(doc["failures"]) == 1000 and doc["failures_not_listed"] == 3
    assert (
        len(doc["failures"][0]["message"]) == 512 and doc["finished_at"] == "2026-05-01T00:00:00Z"
    )
    assert (
        str(summary_uri(spec.output_prefix, JobRef(namespace="ns", name="j")))
        == "s3://out-b/q/_hark/ns.j/summary.json"
    )


def test_the_operator_never_imports_the_engine_or_ray() -> None:
    code = (
        "import sys\n"
        "import hark_operator.handlers, hark_operator.run, hark_operator.cli, hark_operator.runtime\n"
        "import hark_serving.cli.main\n"
        "heavy = sorted(m for m in ('torch', 'funasr', 'ray', 'av', 'hark_serving.runs.items') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_hark_run_reports_manifest_errors_with_the_field(tmp_path: Path) -> None:
    from hark_operator.run import app

    bad = tmp_path / "job.yaml"
    bad.write_text("apiVersion: hark.dev/v1alpha1\nkind: TranscriptionJob\nmetadata: {name: j}\n"
                   "spec:\n  input: {uri: s3://in-b/p/}\n  output: {uri: s3://out-b/q/}\n  parallelism: 0\n")  # fmt: skip
    result = CliRunner().invoke(app, ["-f", str(bad)])
    assert result.exit_code == 2
    assert "spec.parallelism" in result.output and "less than the minimum of 1" in result.output


def test_hark_operator_reports_bad_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from hark_operator.cli import app

    monkeypatch.setenv("HARK_SCALER", "keda")
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 2 and "HARK_SCALER='keda'" in result.output
