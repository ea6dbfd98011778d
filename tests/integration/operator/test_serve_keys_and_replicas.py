"""Faults on the real Serve app, continued: S3 keys rotated mid-job and a Transcriber
replica killed mid-batch; writes counted by bucket versioning."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.env.environment import Environment
from tests.env.kube import apply_yaml, wait_for
from tests.fixtures import audio
from tests.integration.serve.conftest import app_args

from .conftest import (
    SECRET,
    create_secret,
    get_job,
    job_manifest,
    json_versions,
    keys,
    kopf_operator,
    operator_environ,
    serve_profiles,
    upload,
    wait_phase,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


from .test_serve_faults import (
    DEFAULT_RETRY,
    FILES,
    App,
    assert_each_file_written_once,
    condition,
)

pytestmark = pytest.mark.integration


def _operator_keys(test_env: Environment, namespace: str, access: str, secret: str) -> None:
    """The profile's Secret in the operator's namespace, replaced in place."""
    doc = test_env.kubectl(
        "create", "secret", "generic", SECRET, "-n", namespace,
        f"--from-literal=AWS_ACCESS_KEY_ID={access}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={secret}",
        "--dry-run=client", "-o", "yaml",
    )  # fmt: skip
    apply_yaml(test_env, doc.stdout, namespace=namespace)


def _serve_keys(profiles: Path, access: str, secret: str) -> None:
    """The Serve pods' credentialsDir, as the kubelet updates a Secret volume: new files
    moved over the old ones."""
    creds = profiles.parent / "creds"
    for name, value in (("AWS_ACCESS_KEY_ID", access), ("AWS_SECRET_ACCESS_KEY", secret)):
        fresh = creds / f".{name}.new"
        fresh.write_text(value)
        fresh.replace(creds / name)


def test_s3_keys_rotated_mid_watch_job_the_job_carries_on(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    versioned: str,
    s3: S3Client,
    audio_dir: Path,
    tiny_model_dir: Path,
    serve_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Working keys, then wrong ones everywhere (the operator's scan is refused), then the
    operator's Secret fixed while the Serve pods' volume lags (their items are refused),
    then working keys again: nothing is lost, written twice or recorded as an error."""
    bucket, half = versioned, FILES // 2
    wav = audio_dir / "one_sentence_16k.wav"
    upload(s3, bucket, {f"in/a{i:02d}.wav": wav for i in range(half)})
    create_secret(test_env, namespace)
    profiles = serve_profiles(test_env, tmp_path, bucket)
    app = App(serve_url, app_args(tiny_model_dir, storage_profiles=str(profiles)))
    environ = operator_environ(test_env, namespace, tmp_path, serve_url, **DEFAULT_RETRY)
    good = (test_env.s3_access_key, test_env.s3_secret_key)
    wrong = ("not-a-key", "not-the-secret")

    def progressing(pred: Any, message: str) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            job = get_job(test_env, namespace, "rotate")
            return job if pred(condition(job, "Progressing")) else None

        return wait_for(check, timeout=180, message=message)

    app.up()
    try:
        with kopf_operator(monkeypatch, environ, namespace):
            manifest = job_manifest("rotate", bucket, mode="Watch", pollIntervalSeconds=1)
            apply_yaml(test_env, manifest, namespace=namespace)
            wait_for(lambda: len(json_versions(s3, bucket)) == half, timeout=180, message="1st")
            _operator_keys(test_env, namespace, *wrong)
            _serve_keys(profiles, *wrong)
            upload(s3, bucket, {f"in/b{i:02d}.wav": wav for i in range(FILES - half)})
            scan_refused = progressing(
                lambda c: c.get("reason") == "AccessDenied", "the keys refused"
            )
            _operator_keys(test_env, namespace, *good)
            items_refused = progressing(
                lambda c: c.get("reason") == "AccessDenied" and "files wait" in c["message"],
                "the items refused",
            )
            written_while_refused = len(json_versions(s3, bucket))
            _serve_keys(profiles, *good)

            def all_done() -> dict[str, Any] | None:
                job = get_job(test_env, namespace, "rotate")
                counts = (job.get("status") or {}).get("counts") or {}
                done = counts.get("succeeded") == FILES and not counts["pending"]
                return job if done and condition(job, "Progressing")["status"] == "True" else None

            job = wait_for(all_done, timeout=300, message="every file transcribed")
    finally:
        app.down()
    assert scan_refused["status"]["phase"] == "Watching"
    assert items_refused["status"]["phase"] == "Watching"
    assert items_refused["status"]["counts"]["failed"] == 0
    assert written_while_refused == half  # the new files waited, none was written
    assert job["status"]["phase"] == "Watching" and job["status"]["counts"]["failed"] == 0
    assert condition(job, "Progressing")["status"] == "True"
    assert [k for k in keys(s3, bucket, "out/") if k.endswith(".error.json")] == []
    versions = json_versions(s3, bucket)
    # The counts that ended the wait, beside what was written: they must agree.
    assert len(versions) == FILES and set(versions.values()) == {1}, (versions, job["status"])


def _transcriber_pid() -> int:
    """The process of the one live Transcriber replica (from Ray's actor table, which
    needs no dashboard)."""
    from ray._private.state import actors

    alive = [
        a
        for a in actors(actor_state_name="ALIVE").values()
        if "Transcriber" in a["ActorClassName"] or "#Transcriber#" in a["Name"]
    ]
    assert len(alive) == 1 and alive[0]["Pid"], alive
    return int(alive[0]["Pid"])


def test_a_transcriber_replica_killed_mid_batch_loses_and_repeats_nothing(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    versioned: str,
    s3: S3Client,
    tiny_model_dir: Path,
    serve_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """SIGKILL the model's process while segments of several files are in its batches:
    Serve starts a new replica, and every file ends with one transcript, none with an
    error record."""
    import os
    import signal

    bucket = versioned
    long = audio.long_speech(tmp_path / "long.wav", 0.5)  # many segments per file
    upload(s3, bucket, {f"in/{i:02d}.wav": long for i in range(FILES)})
    create_secret(test_env, namespace)
    app = App(
        serve_url,
        app_args(tiny_model_dir, storage_profiles=str(serve_profiles(test_env, tmp_path, bucket))),
    )
    environ = operator_environ(test_env, namespace, tmp_path, serve_url, **DEFAULT_RETRY)
    app.up()
    try:
        with kopf_operator(monkeypatch, environ, namespace):
            apply_yaml(test_env, job_manifest("killed", bucket), namespace=namespace)
            wait_for(lambda: len(json_versions(s3, bucket)) >= 1, timeout=180, message="1 output")
            victim = _transcriber_pid()
            os.kill(victim, signal.SIGKILL)
            written_at_kill = len(json_versions(s3, bucket))
            job = wait_phase(test_env, namespace, "killed", {"Succeeded", "Failed"}, timeout=420)
            replacement = _transcriber_pid()
    finally:
        app.down()
    assert written_at_kill < FILES, "the kill came too late to test anything"
    assert replacement != victim  # Serve started a new replica
    assert_each_file_written_once(s3, bucket, job)
