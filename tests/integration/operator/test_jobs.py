"""Job lifecycle through the real operator: Watch, suspend/resume, delete, priorities, bounded kopf state."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.env.environment import Environment
from tests.env.kube import apply_yaml, wait_for

from .conftest import (
    create_secret,
    get_job,
    job_manifest,
    keys,
    kopf_operator,
    operator_environ,
    upload,
    wait_phase,
)
from .itemserver import ItemServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration


@pytest.fixture
def setup(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    item_server: ItemServer,
    tmp_path: Path,
) -> dict[str, str]:
    create_secret(test_env, namespace)
    item_server.order.clear()
    return operator_environ(test_env, namespace, tmp_path, item_server.url)  # type: ignore[attr-defined]


def _when(stamp: str) -> datetime:
    """A status timestamp (RFC 3339, fraction optional) as a datetime."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_watch_job_transcribes_a_new_upload_on_a_later_poll(
    test_env: Environment,
    namespace: str,
    bucket: str,
    s3: S3Client,
    audio_dir: Path,
    setup: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    poll = 3
    one = audio_dir / "one_sentence_16k.wav"
    upload(s3, bucket, {"in/first.wav": one})
    with kopf_operator(monkeypatch, setup, namespace):
        apply_yaml(
            test_env,
            job_manifest("drop", bucket, mode="Watch", pollIntervalSeconds=poll),
            namespace=namespace,
        )
        wait_for(
            lambda: "out/first.wav.json" in keys(s3, bucket, "out/"),
            timeout=60,
            message="first output",
        )
        # The first scan is over (it may still be listing when its first file is done,
        # and the status says Watching from the start): the upload is a later poll's.
        first_scan = wait_for(
            lambda: (
                (job := get_job(test_env, namespace, "drop"))["status"]["phase"] == "Watching"
                and job["status"].get("lastScanTime")
            ),
            timeout=30,
            message="the first scan complete",
        )
        time.sleep(0.5)
        upload(s3, bucket, {"in/later/second.wav": one})
        wait_for(
            lambda: "out/later/second.wav.json" in keys(s3, bucket, "out/"),
            timeout=2 * poll + 10,
            interval=0.1,
            message="second output",
        )

        def counted() -> dict[str, object] | None:
            status = get_job(test_env, namespace, "drop")["status"]
            later = _when(str(status["lastScanTime"])) > _when(first_scan)  # polls go on
            return status if status["counts"]["succeeded"] == 2 and later else None

        status = wait_for(counted, timeout=2 * poll + 10, message="both counted")
    assert status["phase"] == "Watching" and status["counts"]["total"] == 2
    assert "completionTime" not in status
    summary = json.loads(
        s3.get_object(Bucket=bucket, Key=f"out/_hark/{namespace}.drop/summary.json")["Body"].read()
    )
    assert summary["files_summarized"] >= 1


def test_suspend_pauses_dispatch_and_resume_finishes(
    test_env: Environment,
    namespace: str,
    bucket: str,
    s3: S3Client,
    audio_dir: Path,
    setup: dict[str, str],
    item_server: ItemServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one = audio_dir / "one_sentence_16k.wav"
    upload(s3, bucket, {f"in/{i}.wav": one for i in range(4)})
    with kopf_operator(monkeypatch, setup, namespace):
        apply_yaml(test_env, job_manifest("paused", bucket, suspend=True), namespace=namespace)
        job = wait_phase(test_env, namespace, "paused", {"Suspended"})
        time.sleep(1.0)
        assert not [u for u in item_server.order if f"/{bucket}/" in u]
        assert not keys(s3, bucket, "out/")
        cond = {c["type"]: c for c in job["status"]["conditions"]}
        assert cond["Suspended"]["status"] == "True"
        test_env.kubectl(
            "patch",
            "tj",
            "paused",
            "-n",
            namespace,
            "--type=merge",
            "-p",
            '{"spec":{"suspend":false}}',
        )
        job = wait_phase(test_env, namespace, "paused", {"Succeeded"}, timeout=60)
    assert job["status"]["counts"]["succeeded"] == 4
    cond = {c["type"]: c for c in job["status"]["conditions"]}
    assert cond["Suspended"]["status"] == "False" and job["status"]["observedGeneration"] == 2


def test_deleting_a_job_stops_dispatch_and_keeps_outputs(
    test_env: Environment,
    namespace: str,
    bucket: str,
    s3: S3Client,
    audio_dir: Path,
    setup: dict[str, str],
    item_server: ItemServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one = audio_dir / "one_sentence_16k.wav"
    upload(s3, bucket, {f"in/{i:02d}.wav": one for i in range(10)})
    monkeypatch.setattr(item_server, "slow_seconds", 0.4)
    with kopf_operator(monkeypatch, setup, namespace):
        apply_yaml(test_env, job_manifest("doomed", bucket, parallelism=1), namespace=namespace)
        wait_for(lambda: len(keys(s3, bucket, "out/")) >= 2, timeout=60, message="two outputs")
        test_env.kubectl("delete", "tj", "doomed", "-n", namespace, "--timeout=30s")
        gone = test_env.kubectl("get", "tj", "doomed", "-n", namespace, check=False)
        assert "NotFound" in gone.stderr
        sent = len([u for u in item_server.order if f"/{bucket}/" in u])
        time.sleep(1.5)
        assert len([u for u in item_server.order if f"/{bucket}/" in u]) == sent
    written = [k for k in keys(s3, bucket, "out/") if k.endswith(".wav.json")]
    assert 2 <= len(written) < 10  # outputs stay; the rest was never started


def test_higher_priority_jobs_are_dispatched_first(
    test_env: Environment,
    namespace: str,
    bucket: str,
    s3: S3Client,
    audio_dir: Path,
    setup: dict[str, str],
    item_server: ItemServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one = audio_dir / "one_sentence_16k.wav"
    upload(s3, bucket, {f"low/{i}.wav": one for i in range(4)})
    upload(s3, bucket, {f"high/{i}.wav": one for i in range(4)})
    monkeypatch.setattr(item_server, "slow_seconds", 0.5)
    setup["HARK_MAX_IN_FLIGHT"] = "1"
    low = job_manifest("low", bucket, priority=0, parallelism=4, input={"uri": f"s3://{bucket}/low/"},
                       output={"uri": f"s3://{bucket}/out-low/"})  # fmt: skip
    high = job_manifest("high", bucket, priority=100, parallelism=4, input={"uri": f"s3://{bucket}/high/"},
                        output={"uri": f"s3://{bucket}/out-high/"})  # fmt: skip
    with kopf_operator(monkeypatch, setup, namespace):
        apply_yaml(test_env, low, namespace=namespace)
        wait_for(
            lambda: any(f"/{bucket}/low/" in u for u in item_server.order),
            timeout=30,
            message="low started",
        )
        apply_yaml(test_env, high, namespace=namespace)
        wait_phase(test_env, namespace, "low", {"Succeeded"}, timeout=90)
        wait_phase(test_env, namespace, "high", {"Succeeded"}, timeout=90)
    order = [
        "high" if f"/{bucket}/high/" in u else "low"
        for u in item_server.order
        if f"/{bucket}/" in u
    ]
    first_high = order.index("high")
    assert first_high <= 2, order  # what was already running when the high job arrived
    assert order[first_high : first_high + 4] == ["high"] * 4, order


def test_kopf_keeps_its_state_in_status_and_annotations_stay_bounded(
    test_env: Environment,
    namespace: str,
    bucket: str,
    s3: S3Client,
    audio_dir: Path,
    setup: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    upload(s3, bucket, {"in/a.wav": audio_dir / "one_sentence_16k.wav"})
    with kopf_operator(monkeypatch, setup, namespace):
        apply_yaml(
            test_env,
            job_manifest("busy", bucket, mode="Watch", pollIntervalSeconds=1),
            namespace=namespace,
        )
        wait_phase(test_env, namespace, "busy", {"Watching"})
        sizes = []
        for i in range(25):  # many spec changes: each one runs kopf's update handler
            patch = json.dumps({"spec": {"priority": i, "parallelism": 1 + i % 3}})
            test_env.kubectl("patch", "tj", "busy", "-n", namespace, "--type=merge", "-p", patch)
            time.sleep(0.15)
            job = get_job(test_env, namespace, "busy")
            sizes.append(len(json.dumps(job["metadata"].get("annotations") or {})))

        def settled() -> dict[str, object] | None:
            job = get_job(test_env, namespace, "busy")
            diffbase = ((job.get("status") or {}).get("kopf") or {}).get("diffbase")
            return job if diffbase and '"priority":24' in diffbase.replace(" ", "") else None

        job = wait_for(settled, timeout=30, message="the last spec change handled")
    annotations = job["metadata"].get("annotations") or {}
    assert not [k for k in annotations if "kopf" in k], annotations
    assert max(sizes) == sizes[0]  # nothing accumulates in annotations
    assert len(json.dumps(job["status"]["kopf"])) < 4096
    assert job["metadata"]["finalizers"] == ["hark.dev/operator"]


def test_a_finished_job_is_deleted_after_its_ttl_and_its_outputs_stay(
    test_env: Environment,
    namespace: str,
    bucket: str,
    s3: S3Client,
    audio_dir: Path,
    setup: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    upload(s3, bucket, {"in/a.wav": audio_dir / "one_sentence_16k.wav"})
    with kopf_operator(monkeypatch, setup, namespace):
        apply_yaml(
            test_env, job_manifest("brief", bucket, ttlSecondsAfterFinished=2), namespace=namespace
        )
        wait_phase(test_env, namespace, "brief", {"Succeeded"})
        finished = time.monotonic()

        def gone() -> bool:
            result = test_env.kubectl("get", "tj", "brief", "-n", namespace, check=False)
            return "NotFound" in result.stderr

        wait_for(gone, timeout=30, message="the job object deleted")
    assert time.monotonic() - finished >= 1.0
    assert "out/a.wav.json" in keys(s3, bucket, "out/")


def test_an_embedded_operator_processes_items_in_process(
    test_env: Environment,
    namespace: str,
    bucket: str,
    s3: S3Client,
    audio_dir: Path,
    tiny_model_dir: Path,
    setup: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    upload(
        s3,
        bucket,
        {"in/a.wav": audio_dir / "one_sentence_16k.wav", "in/b.ogg": audio_dir / "speech_en.ogg"},
    )
    setup.update(
        HARK_PROCESSOR="inprocess", HARK_SCALER="inprocess", HARK_MAX_IN_FLIGHT="2",
        HARK_MODEL=str(tiny_model_dir), HARK_DEVICE="cpu", HARK_THREADS="1",
    )  # fmt: skip
    with kopf_operator(monkeypatch, setup, namespace):
        apply_yaml(test_env, job_manifest("embedded", bucket), namespace=namespace)
        job = wait_phase(test_env, namespace, "embedded", {"Succeeded", "Failed"}, timeout=120)
    assert job["status"]["phase"] == "Succeeded" and job["status"]["counts"]["succeeded"] == 2
    assert {"out/a.wav.json", "out/b.ogg.json"} <= set(keys(s3, bucket, "out/"))


def test_a_watch_job_whose_runner_fails_says_so_and_starts_again(
    test_env: Environment,
    namespace: str,
    bucket: str,
    s3: S3Client,
    audio_dir: Path,
    setup: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failure outside the scan (here: a bug on the runner's first start) is never a
    drop folder that stopped silently: the phase and a condition say so until it runs."""
    from hark_operator.jobs.lifecycle import JobRunner

    upload(s3, bucket, {"in/first.wav": audio_dir / "one_sentence_16k.wav"})
    original, starts = JobRunner._main, []

    async def fails_first(self: JobRunner) -> bool:
        starts.append(1)
        if len(starts) == 1:
            raise RuntimeError("the runner broke")
        return await original(self)

    monkeypatch.setattr(JobRunner, "_main", fails_first)
    with kopf_operator(monkeypatch, setup, namespace):
        apply_yaml(test_env, job_manifest("drop", bucket, mode="Watch"), namespace=namespace)
        failed = wait_phase(test_env, namespace, "drop", {"Pending"}, timeout=60)
        progressing = next(c for c in failed["status"]["conditions"] if c["type"] == "Progressing")
        wait_for(
            lambda: "out/first.wav.json" in keys(s3, bucket, "out/"),
            timeout=90,
            message="the output, after the runner started again",
        )
        watching = wait_phase(test_env, namespace, "drop", {"Watching"})
    assert progressing["status"] == "False" and progressing["reason"] == "RunnerFailed"
    assert "RuntimeError: the runner broke" in progressing["message"]
    assert "(failure 1)" in progressing["message"]
    assert len(starts) == 2
    again = next(c for c in watching["status"]["conditions"] if c["type"] == "Progressing")
    assert again["reason"] != "RunnerFailed"
