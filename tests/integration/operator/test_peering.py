"""Two operator replicas: only the one peering elects works; when it dies, the other takes over."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.env.environment import Environment
from tests.env.kube import apply_yaml, wait_for

from .conftest import create_secret, job_manifest, operator_environ, upload, wait_phase
from .itemserver import ItemServer
from .test_resilience import start_operator, stop

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration


def test_only_the_elected_replica_dispatches_and_the_other_takes_over(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    bucket: str,
    s3: S3Client,
    audio_dir: Path,
    item_server: ItemServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    upload(s3, bucket, {f"in/{i:02d}.wav": audio_dir / "one_sentence_16k.wav" for i in range(16)})
    create_secret(test_env, namespace)
    monkeypatch.setattr(item_server, "slow_seconds", 0.5)
    base = operator_environ(
        test_env, namespace, tmp_path, item_server.url,  # type: ignore[attr-defined]
        HARK_STANDALONE="false", HARK_PEERING_LIFETIME_SECONDS="10",
    )  # fmt: skip
    leader = start_operator({**base, "HARK_PRIORITY": "1000"}, tmp_path / "leader.log")
    standby = None
    try:

        def peers() -> dict[str, dict[str, object]]:
            out = test_env.kubectl(
                "get", "kopfpeerings", "hark", "-n", namespace, "-o", "json", check=False
            )
            return dict(json.loads(out.stdout).get("status") or {}) if out.returncode == 0 else {}

        wait_for(lambda: len(peers()) == 1, timeout=60, message="the leader's keep-alive")
        standby = start_operator({**base, "HARK_PRIORITY": "1"}, tmp_path / "standby.log")
        wait_for(lambda: len(peers()) == 2, timeout=60, message="both keep-alives")
        apply_yaml(test_env, job_manifest("shared", bucket, parallelism=1), namespace=namespace)

        def sent() -> int:
            return len([u for u, _, _ in item_server.senders if f"/{bucket}/" in u])

        wait_for(lambda: sent() >= 4, timeout=60, message="work under way")
        leader.send_signal(signal.SIGKILL)
        leader.wait(timeout=10)
        killed = time.monotonic()
        job = wait_phase(test_env, namespace, "shared", {"Succeeded", "Failed"}, timeout=120)
    finally:
        stop(leader)
        if standby is not None:
            stop(standby)
    assert job["status"]["phase"] == "Succeeded" and job["status"]["counts"]["succeeded"] == 16
    mine = [(u, who, t) for u, who, t in item_server.senders if f"/{bucket}/" in u]
    senders = list(dict.fromkeys(who for _, who, _ in mine))
    assert len(senders) == 2, senders  # the leader, then the standby; never a third
    first, second = senders
    last_of_first = max(t for _, who, t in mine if who == first)
    first_of_second = min(t for _, who, t in mine if who == second)
    assert last_of_first < killed <= first_of_second  # never both at once
