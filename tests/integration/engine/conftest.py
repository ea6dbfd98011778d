"""S3 settings for the data plane, pointed at the session's MinIO."""

from __future__ import annotations

import pytest

from hark_serving.storage.s3 import S3Settings, S3Store
from tests.env.environment import Environment


@pytest.fixture
def s3_env(test_env: Environment, monkeypatch: pytest.MonkeyPatch) -> Environment:
    """HARK_* and AWS_* variables so the CLI and settings reach MinIO, as a user sets them."""
    monkeypatch.setenv("HARK_S3_ENDPOINT_URL", test_env.s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", test_env.s3_access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", test_env.s3_secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", test_env.s3_region)
    return test_env


@pytest.fixture
def store(s3_env: Environment) -> S3Store:
    return S3Store(S3Settings(endpoint_url=s3_env.s3_endpoint, region=s3_env.s3_region))
