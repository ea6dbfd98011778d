"""Event-driven drop folders on the real MinIO: with a webhook target pointing at the
operator's receiver, an upload is dispatched long before the next poll, by itself,
without listing the folder again; with the receiver down, listing still finds it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import httpx
import pytest
from prometheus_client import REGISTRY

from tests.env import services
from tests.env.environment import Environment
from tests.env.kube import apply_yaml, unique_name, wait_for

from .conftest import create_secret, job_manifest, keys, kopf_operator, operator_environ
from .itemserver import ItemServer, profiles_for
from .notifying import TOKEN, minio_with_webhook, subscribe

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

TRANSCRIPT = {"schema": "hark.transcript/v1", "source": {"duration": 1.0}, "summary": {}}


@dataclass
class NotifyingMinio:
    endpoint: str
    receiver_port: int
    s3: S3Client
    items: ItemServer


@pytest.fixture(scope="module")
def notifying_minio(
    test_env: Environment, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NotifyingMinio]:
    """A MinIO whose webhook target `HARK` posts every event to 127.0.0.1:<receiver_port>,
    configured the way a platform team does it (MINIO_NOTIFY_WEBHOOK_* at start)."""
    root = tmp_path_factory.mktemp("notify-minio")
    receiver = services.free_port()
    items: ItemServer | None = None
    with minio_with_webhook(test_env, root, receiver) as server:
        endpoint = server.endpoint
        try:
            s3 = boto3.client(
                "s3", endpoint_url=endpoint, region_name=test_env.s3_region,
                aws_access_key_id=test_env.s3_access_key,
                aws_secret_access_key=test_env.s3_secret_key,
            )  # fmt: skip
            profiles = profiles_for(endpoint, test_env.s3_access_key, test_env.s3_secret_key)
            items = ItemServer(tiny_model_dir, profiles)
            items.url = f"http://127.0.0.1:{items.serve()}"  # type: ignore[attr-defined]
            yield NotifyingMinio(endpoint, receiver, s3, items)
        finally:
            if items is not None:
                items.stop()


def drop_folder(minio: NotifyingMinio, transcribed: int = 0) -> str:
    """A bucket whose uploads are notified, holding `transcribed` inputs under `in/` with
    current transcripts under `out/` (written as the worker writes them)."""
    bucket = unique_name("drop")
    minio.s3.create_bucket(Bucket=bucket)
    for i in range(transcribed):
        key = f"old-{i:04d}.wav"
        etag = minio.s3.put_object(Bucket=bucket, Key=f"in/{key}", Body=b"never decoded")["ETag"]
        minio.s3.put_object(
            Bucket=bucket, Key=f"out/{key}.json", Body=json.dumps(TRANSCRIPT).encode(),
            Metadata={"hark-source-etag": etag.strip('"')},
        )  # fmt: skip
    subscribe(minio.s3, bucket)
    return bucket


def operator_count(name: str, **labels: str) -> float:
    """A counter of the operator running in this process (its own /metrics)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def dispatched(minio: NotifyingMinio, bucket: str, key: str) -> bool:
    return f"s3://{bucket}/{key}" in minio.items.order


def watch_job(name: str, bucket: str, poll: int) -> str:
    return job_manifest(
        name, bucket, mode="Watch", pollIntervalSeconds=poll, parallelism=1,
        input={"uri": f"s3://{bucket}/in/"}, output={"uri": f"s3://{bucket}/out/"},
    )  # fmt: skip


def test_an_upload_is_dispatched_by_itself_without_waiting_for_the_poll(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    notifying_minio: NotifyingMinio,
    audio_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    minio = notifying_minio
    bucket = drop_folder(minio, transcribed=200)  # a folder a listing takes a while over
    wav = (audio_dir / "one_sentence_16k.wav").read_bytes()
    minio.s3.put_object(Bucket=bucket, Key="in/first.wav", Body=wav)
    create_secret(test_env, namespace)
    environ = operator_environ(
        test_env, namespace, tmp_path, minio.items.url,  # type: ignore[attr-defined]
        endpoint=minio.endpoint,
        HARK_NOTIFY_PORT=str(minio.receiver_port), HARK_NOTIFY_TOKEN=TOKEN,
    )  # fmt: skip
    job = f"{namespace}/events"
    with kopf_operator(monkeypatch, environ, namespace):
        # A poll every 5 minutes: only the first scan runs within this test by listing.
        apply_yaml(test_env, watch_job("events", bucket, 300), namespace=namespace)
        wait_for(lambda: dispatched(minio, bucket, "in/first.wav"), timeout=60,
                 message="the first scan dispatched the existing file")  # fmt: skip
        wait_for(lambda: operator_count("hark_operator_scans_total", job=job) == 1,
                 timeout=60, message="the first scan complete")  # fmt: skip
        minio.s3.put_object(Bucket=bucket, Key="in/second.wav", Body=wav)
        wait_for(lambda: "out/second.wav.json" in keys(minio.s3, bucket, "out/"), timeout=60,
                 message="the upload transcribed on its notification, long before the poll")  # fmt: skip
        # Planned and queued by itself: the folder was not listed again.
        assert operator_count("hark_operator_scans_total", job=job) == 1
        assert operator_count("hark_operator_notified_keys_total", job=job,
                              result="dispatched") == 1  # fmt: skip
        assert minio.items.order.count(f"s3://{bucket}/in/second.wav") == 1
        # An object the job's filters drop (not audio) is notified and left alone.
        minio.s3.put_object(Bucket=bucket, Key="in/notes.txt", Body=b"not audio")
        wait_for(lambda: operator_count("hark_operator_notified_keys_total", job=job,
                                        result="ignored") == 1,
                 timeout=60, message="the text file looked at and left alone")  # fmt: skip
        url = f"http://127.0.0.1:{minio.receiver_port}/notifications/s3"
        # The receiver refuses what it cannot trust or read.
        anonymous = httpx.post(url, json={"Records": []}, timeout=10)
        assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
        junk = httpx.post(
            url, content=b"not json", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
        assert junk.status_code == 400 and junk.json()["error"]["code"] == "bad_request"
    assert minio.items.requests[f"s3://{bucket}/in/second.wav"] == 1


def test_with_the_receiver_down_listing_still_picks_the_upload_up(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    notifying_minio: NotifyingMinio,
    audio_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    minio = notifying_minio
    bucket = drop_folder(minio)  # MinIO still sends to the port; nothing listens there
    wav = (audio_dir / "one_sentence_16k.wav").read_bytes()
    create_secret(test_env, namespace)
    environ = operator_environ(
        test_env, namespace, tmp_path, minio.items.url,  # type: ignore[attr-defined]
        endpoint=minio.endpoint,
    )  # fmt: skip
    with kopf_operator(monkeypatch, environ, namespace):
        apply_yaml(test_env, watch_job("polling", bucket, 2), namespace=namespace)
        wait_for(lambda: services.port_is_free(minio.receiver_port), timeout=5,
                 message="no receiver")  # fmt: skip
        minio.s3.put_object(Bucket=bucket, Key="in/late.wav", Body=wav)
        wait_for(lambda: dispatched(minio, bucket, "in/late.wav"), timeout=60,
                 message="the upload found by listing")  # fmt: skip
