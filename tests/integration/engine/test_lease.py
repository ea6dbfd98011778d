"""The output lease on a real S3 server (MinIO): conditional PUTs decide who works."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest

from hark_serving.storage.lease import Holding, OutputBusy, acquire, lease_uri, release, renew
from hark_serving.storage.s3 import S3Store
from hark_serving.storage.uris import S3Uri
from tests.env.environment import Environment
from tests.integration.operator.itemserver import profiles_for

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration


@pytest.fixture
def store(test_env: Environment) -> S3Store:
    profiles = profiles_for(test_env.s3_endpoint, test_env.s3_access_key, test_env.s3_secret_key)
    return profiles.store("default")


def test_of_many_at_once_exactly_one_gets_the_lease(store: S3Store, bucket: str) -> None:
    output = S3Uri(bucket, "out/a.wav")
    start = threading.Barrier(8)

    def one(_: int) -> str:
        start.wait()
        try:
            acquire(store, output)
            return "won"
        except OutputBusy:
            return "busy"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(one, range(8)))
    assert sorted(outcomes) == ["busy"] * 7 + ["won"]


def test_renew_and_release_need_the_etag_held(store: S3Store, bucket: str, s3: S3Client) -> None:
    output = S3Uri(bucket, "out/b.wav")
    lease = acquire(store, output)
    renewed = renew(store, lease)
    assert renewed is not None and renewed.etag != lease.etag
    assert renew(store, lease) is None  # the old ETag no longer holds it
    release(store, lease)  # not ours any more: left alone
    assert store.head(lease_uri(output)) is not None
    release(store, renewed)
    assert store.head(lease_uri(output)) is None
    acquire(store, output)  # free again


def test_an_expired_lease_is_taken_over_once(store: S3Store, bucket: str) -> None:
    output = S3Uri(bucket, "out/c.wav")
    acquire(store, output, seconds=30)  # its holder died: never renewed, never released
    with pytest.raises(OutputBusy):
        acquire(store, output)
    start = threading.Barrier(4)

    def later() -> float:  # the clock of takers that come after the expiry
        return time.time() + 31

    def one(_: int) -> str:
        start.wait()
        try:
            acquire(store, output, clock=later)
            return "won"
        except OutputBusy:
            return "busy"

    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(one, range(4))) == ["busy"] * 3 + ["won"]


def test_a_holding_renews_while_held_and_releases_on_close(store: S3Store, bucket: str) -> None:
    output = S3Uri(bucket, "out/d.wav")
    with Holding(store, output, seconds=0.9) as held:
        first = held.lease
        time.sleep(1.5)  # past the first expiry: renewed meanwhile
        assert held.lease is not None and held.lease != first
        with pytest.raises(OutputBusy):
            acquire(store, output)
    assert store.head(lease_uri(output)) is None


def test_a_holding_dropped_unclosed_stops_renewing_and_its_lease_expires(
    store: S3Store, bucket: str
) -> None:
    """A request that died between taking the lease and using it blocks the output only
    until the lease expires, not for as long as the process lives."""
    output = S3Uri(bucket, "out/e.wav")
    held = Holding(store, output, seconds=0.9)
    thread = held._thread
    del held  # no close(): its request was cancelled
    thread.join(timeout=2)
    assert not thread.is_alive()
    time.sleep(1.0)  # past the expiry the last renewal set
    acquire(store, output)  # expired: taken over
