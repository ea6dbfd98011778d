"""`POST /v1/items` against real MinIO: outputs, idempotence, failures, a Worker killed mid-item."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml

from hark_serving.analytics.alerts import idempotency_key
from hark_serving.storage.lease import LEASE_SUFFIX
from hark_serving.transcript.schema import validate_result
from tests.env.environment import Environment
from tests.env.kube import unique_name, wait_for
from tests.env.pytest_plugin import empty_bucket
from tests.fixtures import audio
from tests.fixtures.calls import synthetic_call

from .conftest import app_args, assert_error, deploy

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

TOKEN = "items-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CLIENT_TOKEN = "client-test-token"
CLIENT_AUTH = {"Authorization": f"Bearer {CLIENT_TOKEN}"}


@pytest.fixture(scope="module")
def items_token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The operator's token as the chart mounts it: a file in a Secret volume."""
    path = tmp_path_factory.mktemp("secrets") / "items-token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture(scope="module")
def buckets(s3: S3Client) -> Iterator[dict[str, str]]:
    """Input and output buckets the app may use, and one it may not; versioned, so every
    write leaves a record."""
    names = {k: unique_name(f"hark-items-{k}", max_len=40) for k in ("inp", "out", "forbidden")}
    for name in names.values():
        s3.create_bucket(Bucket=name)
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    yield names
    for name in names.values():
        empty_bucket(s3, name)
        for bucket, key, version in versions(s3, name):
            s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
        s3.delete_bucket(Bucket=name)


@pytest.fixture(scope="module")
def profiles(
    test_env: Environment, buckets: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Storage profiles as the chart writes them: credentials in files, buckets allow-listed."""
    d = tmp_path_factory.mktemp("profiles")
    creds = d / "minio"
    creds.mkdir()
    (creds / "AWS_ACCESS_KEY_ID").write_text(test_env.s3_access_key)
    (creds / "AWS_SECRET_ACCESS_KEY").write_text(test_env.s3_secret_key)
    minio = {
        "endpointUrl": test_env.s3_endpoint,
        "region": test_env.s3_region,
        "addressingStyle": "path",
        "readBuckets": [buckets["inp"]],
        "writeBuckets": [buckets["out"]],
        "credentialsDir": str(creds),
    }
    # The same store, for the jobs of one namespace only.
    team = {**minio, "namespaces": ["team-a"]}
    # Nothing listens on port 9: every call fails as a down object store does.
    down = {**minio, "endpointUrl": "http://127.0.0.1:9"}
    path = d / "profiles.yaml"
    path.write_text(
        yaml.safe_dump(
            {"default": "minio", "profiles": {"minio": minio, "down": down, "team": team}}
        )
    )
    return path


@pytest.fixture(scope="module")
def url(
    serve_instance: str, tiny_model_dir: Path, profiles: Path, items_token_file: Path
) -> Iterator[str]:
    args = app_args(
        tiny_model_dir,
        storage_profiles=str(profiles),
        api_token=CLIENT_TOKEN,
        items_token_file=str(items_token_file),
        item_attempts=2,
        item_backoff_seconds=0.1,
    )
    with deploy(serve_instance, args) as base:
        yield base


def upload(s3: S3Client, bucket: str, key: str, path: Path) -> str:
    s3.upload_file(str(path), bucket, key)
    return str(s3.head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')


def item(url: str, body: dict[str, Any], timeout: float = 300) -> httpx.Response:
    return httpx.post(f"{url}/v1/items", json=body, headers=AUTH, timeout=timeout)


def head(s3: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return dict(s3.head_object(Bucket=bucket, Key=key))
    except s3.exceptions.ClientError:
        return None


def test_an_item_writes_every_format_tagged_with_the_source_etag(
    url: str, s3: S3Client, buckets: dict[str, str], audio_dir: Path
) -> None:
    inp, out = buckets["inp"], buckets["out"]
    etag = upload(s3, inp, "calls/a.mp3", audio_dir / "speech_en.mp3")
    r = item(
        url,
        {
            "input_uri": f"s3://{inp}/calls/a.mp3",
            "output_uri": f"s3://{out}/calls/a.mp3",
            "formats": ["json", "srt", "vtt", "txt"],
            "job": "default/test",
        },
    )
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["status"] == "succeeded"
    assert result["output_uri"] == f"s3://{out}/calls/a.mp3.json"
    assert result["etag"] == etag and result["audio_seconds"] > 18
    doc = json.loads(s3.get_object(Bucket=out, Key="calls/a.mp3.json")["Body"].read())
    validate_result(doc)
    assert doc["source"]["uri"] == f"s3://{inp}/calls/a.mp3"
    assert doc["source"]["etag"] == etag
    for fmt in ("json", "srt", "vtt", "txt"):
        meta = s3.head_object(Bucket=out, Key=f"calls/a.mp3.{fmt}")["Metadata"]
        assert meta["hark-source-etag"] == etag
    vtt = s3.get_object(Bucket=out, Key="calls/a.mp3.vtt")["Body"].read().decode()
    assert vtt.startswith("WEBVTT")


def test_a_repeat_is_skipped_and_rewrites_nothing(
    url: str, s3: S3Client, buckets: dict[str, str], audio_dir: Path
) -> None:
    inp, out = buckets["inp"], buckets["out"]
    upload(s3, inp, "again/b.wav", audio_dir / "one_sentence_16k.wav")
    body = {
        "input_uri": f"s3://{inp}/again/b.wav",
        "output_uri": f"s3://{out}/again/b.wav",
        "formats": ["srt"],
    }
    assert item(url, body).json()["status"] == "succeeded"
    before = {f: head(s3, out, f"again/b.wav.{f}") for f in ("json", "srt")}
    time.sleep(1.1)  # LastModified has one-second resolution
    second = item(url, body)
    assert second.status_code == 200
    assert second.json()["status"] == "skipped"
    for fmt, info in before.items():
        now = head(s3, out, f"again/b.wav.{fmt}")
        assert info is not None and now is not None
        assert now["LastModified"] == info["LastModified"] and now["ETag"] == info["ETag"]
    # With overwrite, it runs again.
    assert item(url, {**body, "overwrite": True}).json()["status"] == "succeeded"


def test_an_undecodable_file_leaves_an_error_object_and_no_transcript(
    url: str, s3: S3Client, buckets: dict[str, str], audio_dir: Path
) -> None:
    inp, out = buckets["inp"], buckets["out"]
    etag = upload(s3, inp, "bad/c.mp3", audio_dir / "broken_not_audio.mp3")
    r = item(
        url,
        {"input_uri": f"s3://{inp}/bad/c.mp3", "output_uri": f"s3://{out}/bad/c.mp3", "attempt": 3},
    )
    body = assert_error(r, 415, "unsupported_format")
    assert body["status"] == "failed" and body["retryable"] is False
    record = json.loads(s3.get_object(Bucket=out, Key="bad/c.mp3.error.json")["Body"].read())
    assert record["code"] == "unsupported_format" and record["attempts"] == 3
    assert record["source"] == {"uri": f"s3://{inp}/bad/c.mp3", "etag": etag}
    assert head(s3, out, "bad/c.mp3.json") is None


def test_an_item_that_raises_an_alert_writes_it_to_the_outbox_it_names_before_the_transcript(
    url: str, s3: S3Client, buckets: dict[str, str]
) -> None:
    inp, out = buckets["inp"], buckets["out"]
    etag = upload(s3, inp, "qa/c1.wav", synthetic_call().path)
    body = {
        "input_uri": f"s3://{inp}/qa/c1.wav",
        "output_uri": f"s3://{out}/qa/c1.wav",
        "options": {"channels": "split", "roles": ["agent", "customer"]},
        "job": "default/qa",
        "categories": [
            {"name": "long-silence", "alert": True, "all": [{"non_talk": {"min_seconds": 5}}]}
        ],
        "alerts_prefix": f"s3://{out}/qa/_hark/default.qa/alerts/",
    }
    r = item(url, body)
    assert r.status_code == 200, r.text
    assert r.json()["alerts"] == ["long-silence"]
    key = idempotency_key(f"s3://{inp}/qa/c1.wav", etag, ["long-silence"])
    record = f"qa/_hark/default.qa/alerts/{key}.json"
    doc = json.loads(s3.get_object(Bucket=out, Key=record)["Body"].read())
    assert (doc["type"], doc["file"], doc["transcript"], doc["idempotency_key"]) == (
        "hark.alert/v1",
        f"s3://{inp}/qa/c1.wav",
        f"s3://{out}/qa/c1.wav.json",
        key,
    )
    assert [c["name"] for c in doc["categories"]] == ["long-silence"]
    # One write of the record, and one of the transcript (beside the output's lease).
    written = [k for _, k, _ in versions(s3, out) if k.startswith("qa/") and k.endswith(".json")]
    assert sorted(written) == [
        "qa/_hark/default.qa/alerts/" + key + ".json",
        "qa/c1.wav.json",
    ]
    # An outbox outside the output's bucket is refused before any work: nothing is written.
    other = {**body, "output_uri": f"s3://{out}/qa/c2.wav", "alerts_prefix": f"s3://{inp}/x/"}
    before = versions(s3, inp, out)
    assert_error(item(url, other), 422, "invalid_uri")
    assert [v for v in versions(s3, inp, out) if not v[1].endswith(".hark-lease")] == [
        v for v in before if not v[1].endswith(".hark-lease")
    ]


def test_buckets_outside_the_allow_list_are_refused(
    url: str, s3: S3Client, buckets: dict[str, str], audio_dir: Path
) -> None:
    inp, out, forbidden = buckets["inp"], buckets["out"], buckets["forbidden"]
    upload(s3, forbidden, "x.wav", audio_dir / "one_sentence_16k.wav")
    upload(s3, inp, "y.wav", audio_dir / "one_sentence_16k.wav")
    for source, dest in ((f"s3://{forbidden}/x.wav", f"s3://{out}/x.wav"),
                         (f"s3://{inp}/y.wav", f"s3://{forbidden}/y.wav")):  # fmt: skip
        r = item(url, {"input_uri": source, "output_uri": dest})
        assert_error(r, 403, "bucket_not_allowed")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=forbidden).get("Contents", [])]
    assert keys == ["x.wav"]
    assert head(s3, out, "x.wav.json") is None and head(s3, out, "x.wav.error.json") is None
    # The replicas are still serving.
    ok = item(url, {"input_uri": f"s3://{inp}/y.wav", "output_uri": f"s3://{out}/y.wav"})
    assert ok.status_code == 200 and ok.json()["status"] == "succeeded"


def versions(s3: S3Client, *bucket_names: str) -> list[tuple[str, str, str]]:
    """Every version and delete marker in the buckets: what a write would change."""
    found = []
    for bucket in bucket_names:
        page = s3.list_object_versions(Bucket=bucket)
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            found.append((bucket, v["Key"], v["VersionId"]))
    return sorted(found)


def test_a_write_into_a_read_only_bucket_is_refused_and_touches_nothing(
    url: str, s3: S3Client, buckets: dict[str, str], audio_dir: Path
) -> None:
    inp, out = buckets["inp"], buckets["out"]
    upload(s3, inp, "ro/a.wav", audio_dir / "one_sentence_16k.wav")
    before = versions(s3, inp, out)
    # An output beside the input: the input bucket is only readable.
    r = item(url, {"input_uri": f"s3://{inp}/ro/a.wav", "output_uri": f"s3://{inp}/ro/a.wav"})
    message = assert_error(r, 403, "bucket_not_allowed")["error"]["message"]
    assert "read-only in storage profile 'minio'" in message and out in message
    assert versions(s3, inp, out) == before


def test_a_profile_used_from_a_namespace_it_does_not_list_is_refused_and_touches_nothing(
    url: str, s3: S3Client, buckets: dict[str, str], audio_dir: Path
) -> None:
    inp, out = buckets["inp"], buckets["out"]
    upload(s3, inp, "ns/a.wav", audio_dir / "one_sentence_16k.wav")
    body = {"input_uri": f"s3://{inp}/ns/a.wav", "output_uri": f"s3://{out}/ns/a.wav",
            "profile": "team", "attempt": 3}  # fmt: skip
    before = versions(s3, inp, out)
    for job in ("team-b/calls", None):
        r = item(url, {**body, "job": job})
        message = assert_error(r, 403, "profile_not_allowed")["error"]["message"]
        assert "'team'" in message and "team-a" in message
    assert versions(s3, inp, out) == before
    ok = item(url, {**body, "job": "team-a/calls"})
    assert ok.status_code == 200 and ok.json()["status"] == "succeeded", ok.text


def test_a_missing_input_or_a_bad_uri_is_a_client_error(url: str, buckets: dict[str, str]) -> None:
    inp, out = buckets["inp"], buckets["out"]
    missing = {"input_uri": f"s3://{inp}/nope.wav", "output_uri": f"s3://{out}/nope.wav"}
    assert_error(item(url, missing), 404, "not_found")
    climbing = {"input_uri": f"s3://{inp}/../etc.wav", "output_uri": f"s3://{out}/e.wav"}
    assert_error(item(url, climbing), 422, "invalid_uri")
    assert_error(item(url, {**missing, "profile": "nope"}), 422, "invalid_option")


def test_a_down_object_store_is_retried_then_reported_retryable(
    url: str, buckets: dict[str, str]
) -> None:
    inp, out = buckets["inp"], buckets["out"]
    body = {"input_uri": f"s3://{inp}/a.wav", "output_uri": f"s3://{out}/a.wav", "profile": "down"}
    r = item(url, body)
    result = assert_error(r, 503, "storage_unavailable")
    assert result["retryable"] is True and r.headers["retry-after"]


def test_the_token_is_required_except_on_probes(url: str, buckets: dict[str, str]) -> None:
    body = {"input_uri": f"s3://{buckets['inp']}/a.wav", "output_uri": f"s3://{buckets['out']}/a"}
    assert_error(httpx.post(f"{url}/v1/items", json=body), 401, "unauthorized")
    wrong = {"Authorization": "Bearer not-it"}
    assert_error(httpx.post(f"{url}/v1/items", json=body, headers=wrong), 401, "unauthorized")
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.get(f"{url}/readyz").status_code == 200


def test_the_client_token_is_forbidden_on_items_and_the_items_token_on_uploads(
    url: str, s3: S3Client, buckets: dict[str, str], audio_dir: Path
) -> None:
    inp, out = buckets["inp"], buckets["out"]
    upload(s3, inp, "auth/a.wav", audio_dir / "one_sentence_16k.wav")
    body = {"input_uri": f"s3://{inp}/auth/a.wav", "output_uri": f"s3://{out}/auth/a.wav"}
    r = httpx.post(f"{url}/v1/items", json=body, headers=CLIENT_AUTH, timeout=60)
    assert "HARK_ITEMS_TOKEN" in assert_error(r, 403, "forbidden")["error"]["message"]
    assert "Contents" not in s3.list_objects_v2(Bucket=out, Prefix="auth/")
    wav = (audio_dir / "one_sentence_16k.wav").read_bytes()
    r = httpx.post(f"{url}/v1/transcribe", files={"file": ("a.wav", wav)}, headers=AUTH)
    assert_error(r, 403, "forbidden")
    r = httpx.post(
        f"{url}/v1/transcribe", files={"file": ("a.wav", wav)}, headers=CLIENT_AUTH, timeout=120
    )
    assert r.status_code == 200, r.text
    assert item(url, body).json()["status"] == "succeeded"


def test_a_rotated_items_token_is_picked_up_without_a_restart(
    url: str, buckets: dict[str, str], items_token_file: Path
) -> None:
    body = {
        "input_uri": f"s3://{buckets['inp']}/nope.wav",
        "output_uri": f"s3://{buckets['out']}/n",
    }
    # As the kubelet rotates a Secret volume: a new file moved over the old one.
    fresh = items_token_file.with_name("items-token.new")
    fresh.write_text("rotated-items-token")
    fresh.replace(items_token_file)
    try:
        assert_error(item(url, body), 401, "unauthorized")  # the old token is gone
        rotated = {"Authorization": "Bearer rotated-items-token"}
        r = httpx.post(f"{url}/v1/items", json=body, headers=rotated, timeout=60)
        assert_error(r, 404, "not_found")  # past auth, to the (missing) object
    finally:
        items_token_file.write_text(TOKEN)
    assert_error(item(url, body), 404, "not_found")


def _rotate(creds: Path, access_key: str, secret_key: str) -> None:
    """As the kubelet updates a Secret volume: new files moved over the old ones."""
    for name, value in (("AWS_ACCESS_KEY_ID", access_key), ("AWS_SECRET_ACCESS_KEY", secret_key)):
        fresh = creds / f".{name}.new"
        fresh.write_text(value)
        fresh.replace(creds / name)


def test_rotated_s3_keys_are_picked_up_without_a_restart(
    url: str,
    s3: S3Client,
    test_env: Environment,
    buckets: dict[str, str],
    profiles: Path,
    audio_dir: Path,
) -> None:
    """The profile's keys come from files (a mounted Secret): wrong keys are refused as an
    access error (never an error record), and the next call after the files are fixed
    uses the new keys, with the same Serve app."""
    inp, out = buckets["inp"], buckets["out"]
    upload(s3, inp, "rotate/a.wav", audio_dir / "one_sentence_16k.wav")
    body = {"input_uri": f"s3://{inp}/rotate/a.wav", "output_uri": f"s3://{out}/rotate/a.wav"}
    creds = profiles.parent / "minio"
    _rotate(creds, "not-a-key", "not-the-secret")
    try:
        refused = item(url, body)
        assert_error(refused, 403, "access_denied")
        assert "Contents" not in s3.list_objects_v2(Bucket=out, Prefix="rotate/")
    finally:
        _rotate(creds, test_env.s3_access_key, test_env.s3_secret_key)
    r = item(url, body)
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    written = [key for _, key, _ in versions(s3, out) if key.startswith("rotate/")]
    assert written.count("rotate/a.wav.json") == 1, written
    assert not [k for k in written if k.endswith(".error.json")], written


def _worker_replicas() -> list[str]:
    import ray

    return [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == "serve" and "#Worker#" in a["name"]
    ]


def test_a_worker_killed_mid_item_never_leaves_a_partial_object(
    url: str, s3: S3Client, buckets: dict[str, str], tmp_path: Path
) -> None:
    import ray

    inp, out = buckets["inp"], buckets["out"]
    long = audio.long_speech(tmp_path / "long.wav", 10)  # a few seconds of work for the Worker
    upload(s3, inp, "long/d.wav", long)
    body = {
        "input_uri": f"s3://{inp}/long/d.wav",
        "output_uri": f"s3://{out}/long/d.wav",
        "formats": ["json", "srt"],
    }
    observations: list[str] = []
    stop = threading.Event()

    def observe() -> None:
        """Read the output as fast as possible: it is absent or complete, never partial."""
        while not stop.is_set():
            try:
                raw = s3.get_object(Bucket=out, Key="long/d.wav.json")["Body"].read()
            except s3.exceptions.NoSuchKey:
                observations.append("absent")
                time.sleep(0.01)
                continue
            try:
                validate_result(json.loads(raw))
                observations.append("complete")
            except ValueError as exc:  # JSONDecodeError is a ValueError too
                observations.append(f"partial: {exc}")

    answers: list[httpx.Response | Exception] = []

    def call() -> None:
        try:
            answers.append(item(url, body))
        except httpx.HTTPError as exc:
            answers.append(exc)

    watcher = threading.Thread(target=observe)
    caller = threading.Thread(target=call)
    watcher.start()
    caller.start()
    # The Worker holds the output's lease exactly while it works on the item: kill it
    # then, however fast this machine transcribes.
    deadline = time.monotonic() + 60
    while head(s3, out, "long/d.wav" + LEASE_SUFFIX) is None:
        assert time.monotonic() < deadline, "the Worker never took the output's lease"
        time.sleep(0.01)
    (victim,) = _worker_replicas()
    ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
    caller.join(timeout=300)
    assert not caller.is_alive()

    # The caller got an answer: either the Ingress's retry on a new Worker succeeded,
    # or a retryable error; retrying (as the operator does) then succeeds.
    (answer,) = answers
    final = answer
    deadline = time.monotonic() + 180
    while not (isinstance(final, httpx.Response) and final.status_code == 200):
        if isinstance(final, httpx.Response):
            # 503: no Worker yet; 409: the killed Worker's lease on the output has not
            # expired yet (one flight per output, even across a replica's death).
            assert final.status_code in (409, 503), final.text
        assert time.monotonic() < deadline, f"no success after the kill: {final}"
        time.sleep(2)
        try:
            final = item(url, body)
        except httpx.HTTPError as exc:
            final = exc
    assert final.json()["status"] in ("succeeded", "skipped")
    time.sleep(0.5)
    stop.set()
    watcher.join()
    assert "complete" in observations
    assert set(observations) <= {"absent", "complete"}
    # The first observation that saw the transcript saw it whole, and it stayed.
    first = observations.index("complete")
    assert set(observations[first:]) == {"complete"}
    # Serve replaces the killed replica.
    wait_for(
        lambda: _worker_replicas() and _worker_replicas() != [victim],
        timeout=120,
        message="a new Worker replica",
    )
