"""A MinIO of its own that posts bucket events to the operator's receiver.

Its webhook target `HARK` is declared when it starts (MINIO_NOTIFY_WEBHOOK_*), the
way a platform team configures one, and points at 127.0.0.1:<receiver_port>; a
bucket sends its events there once `subscribe` configured it. The fixture in
test_notifications.py and benchmarks/control_plane.py use it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.env import services
from tests.env.environment import Environment

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

TOKEN = "notify-test-token"
ARN = "arn:minio:sqs:us-east-1:HARK:webhook"


@dataclass(frozen=True)
class WebhookMinio:
    endpoint: str  # the test environment's keys and region
    pid: int


@contextlib.contextmanager
def minio_with_webhook(
    test_env: Environment, root: Path, receiver_port: int, token: str = TOKEN
) -> Iterator[WebhookMinio]:
    """Run the MinIO until the block ends."""
    api, console = services.free_port(), services.free_port()
    env = dict(os.environ)
    env.update(
        MINIO_ROOT_USER=test_env.s3_access_key,
        MINIO_ROOT_PASSWORD=test_env.s3_secret_key,
        MINIO_SITE_REGION=test_env.s3_region,
        MINIO_BROWSER="off",
        MINIO_UPDATE="off",
        MINIO_NOTIFY_WEBHOOK_ENABLE_HARK="on",
        MINIO_NOTIFY_WEBHOOK_ENDPOINT_HARK=f"http://127.0.0.1:{receiver_port}/notifications/s3",
        MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_HARK=token,
    )
    argv = [
        str(test_env.tools.minio), "server", "--quiet",
        f"--address=127.0.0.1:{api}", f"--console-address=127.0.0.1:{console}",
        str(root / "data"),
    ]  # fmt: skip
    server = services.Server("minio-notify", argv, root / "minio.log", env=env)
    server.start()
    endpoint = f"http://127.0.0.1:{api}"
    try:
        services.wait_ready(
            server, lambda: services.http_ok(f"{endpoint}/minio/health/live"), 60, "live"
        )
        yield WebhookMinio(endpoint, server.pid)
    finally:
        server.stop()


def subscribe(s3: S3Client, bucket: str, prefix: str = "") -> None:
    """Send the bucket's ObjectCreated events (under `prefix`) to the webhook target."""
    rule: dict[str, Any] = {"QueueArn": ARN, "Events": ["s3:ObjectCreated:*"]}
    if prefix:
        rule["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={"QueueConfigurations": [rule]},  # type: ignore[list-item]
    )
