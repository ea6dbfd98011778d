"""Storage profiles: read and write rights per bucket, namespaces, no empty allow-lists."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hark_serving.errors import BucketNotAllowed, ConfigError, ProfileNotAllowed
from hark_serving.serve.settings import ServeSettings
from hark_serving.storage.profiles import StorageProfiles
from hark_serving.storage.uris import S3Uri

CALLS = {
    "readBuckets": ["calls-in", "models"],
    "writeBuckets": ["calls-out"],
    "namespaces": ["callcentre"],
}


def load(tmp_path: Path, profiles: dict[str, object], restricted: bool = True) -> StorageProfiles:
    path = tmp_path / "profiles.yaml"
    path.write_text(yaml.safe_dump({"default": next(iter(profiles)), "profiles": profiles}))
    return StorageProfiles.load(path, restricted=restricted)


def test_read_buckets_are_read_only_and_write_buckets_read_write(tmp_path: Path) -> None:
    store = load(tmp_path, {"calls": CALLS}).store("calls")
    for bucket in ("calls-in", "models", "calls-out"):
        store.check_allowed(S3Uri(bucket, "a.wav"))
    store.check_writable(S3Uri("calls-out", "a.wav.json"))
    with pytest.raises(BucketNotAllowed) as info:
        store.check_writable(S3Uri("models", "SenseVoiceSmall/configuration.json"))
    message = str(info.value)
    assert "read-only in storage profile 'calls'" in message and "calls-out" in message
    with pytest.raises(BucketNotAllowed, match="not in the allowed buckets of storage profile"):
        store.check_allowed(S3Uri("elsewhere", "a.wav"))


def test_a_write_into_a_read_only_bucket_is_refused_before_any_request(tmp_path: Path) -> None:
    # The store has no client yet: a refusal that needed the network would fail differently.
    store = load(tmp_path, {"calls": CALLS}).store("calls")
    with pytest.raises(BucketNotAllowed, match="read-only"):
        store.put_bytes(S3Uri("calls-in", "x.json"), b"{}")
    with pytest.raises(BucketNotAllowed, match="read-only"):
        store.delete(S3Uri("calls-in", "x.json"))
    assert store._client is None


def test_allowed_buckets_still_mean_read_and_write(tmp_path: Path) -> None:
    store = load(tmp_path, {"old": {"allowedBuckets": ["both"]}}).store("old")
    store.check_writable(S3Uri("both", "k"))


@pytest.mark.parametrize(
    "empty", [{}, {"readBuckets": []}, {"allowedBuckets": [], "namespaces": ["a"]}]
)
def test_a_profile_without_buckets_is_refused_at_the_start_of_the_serve_app(
    tmp_path: Path, empty: dict[str, object]
) -> None:
    with pytest.raises(ConfigError, match=r"storage profile 'open' .* names no bucket; list"):
        load(tmp_path, {"open": empty})
    path = tmp_path / "profiles.yaml"
    with pytest.raises(ConfigError, match="names no bucket"):
        ServeSettings(storage_profiles=path).profiles()
    # `hark transcribe` on one's own machine acts for nobody else: any bucket.
    assert not load(tmp_path, {"open": empty}, restricted=False).store("open").restricted


def test_namespaces_limit_who_may_use_a_profile(tmp_path: Path) -> None:
    profiles = load(tmp_path, {"calls": CALLS, "shared": {"readBuckets": ["pub"]}})
    profiles.check_namespace("calls", "callcentre")
    profiles.check_namespace("shared", "anyone")
    with pytest.raises(ProfileNotAllowed) as info:
        profiles.check_namespace("calls", "marketing")
    assert info.value.code == "profile_not_allowed"
    assert "'calls'" in str(info.value) and "callcentre" in str(info.value)
    assert "'marketing'" in str(info.value)
    with pytest.raises(ProfileNotAllowed, match="names no job"):
        profiles.check_namespace(None, None)


def test_the_serve_app_opens_no_bucket_unless_some_are_listed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = ServeSettings().profiles().store(None)
    with pytest.raises(BucketNotAllowed, match=r"\(none\)"):
        store.check_allowed(S3Uri("any", "a.wav"))
    monkeypatch.setenv("HARK_ALLOWED_BUCKETS", "in")
    ServeSettings().profiles().store(None).check_writable(S3Uri("in", "a.json"))
