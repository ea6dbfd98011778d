"""Settings: HARK_* environment, CLI overrides on top, errors that quote the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from hark_serving.config import load_settings
from hark_serving.errors import ConfigError, InvalidOption


def test_environment_then_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARK_VAD", "none")
    monkeypatch.setenv("HARK_ALLOWED_BUCKETS", "calls-in, calls-out")
    monkeypatch.setenv("HARK_BATCH_FRAMES", "9000")
    s = load_settings(vad=None, batch_frames=1200)
    assert (s.vad, s.batch_frames) == ("none", 1200)
    assert s.allowed_buckets == ["calls-in", "calls-out"]
    assert s.s3_store().allowed_buckets == {"calls-in", "calls-out"}


def test_a_bad_value_names_the_variable_and_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARK_MAX_SEGMENT_SECONDS", "0.5")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "HARK_MAX_SEGMENT_SECONDS" in str(err.value) and "'0.5'" in str(err.value)


def test_storage_profiles_come_from_the_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "AWS_ACCESS_KEY_ID").write_text("AKIA\n")
    (creds / "AWS_SECRET_ACCESS_KEY").write_text("s3cr3t\n")
    path.write_text(
        "default: minio\nprofiles:\n  minio:\n    endpointUrl: http://minio:9000\n"
        f"    allowedBuckets: [in, out]\n    credentialsDir: {creds}\n  aws:\n    region: eu-west-1\n"
        "    readBuckets: [archive]\n"
    )
    profiles = load_settings(storage_profiles=path).profiles()
    assert profiles.names == ["aws", "minio"]
    store = profiles.store(None)
    assert store.settings.endpoint_url == "http://minio:9000"
    assert store.settings.access_key_id == "AKIA" and store.settings.secret_access_key == "s3cr3t"
    assert store.allowed_buckets == {"in", "out"}
    with pytest.raises(InvalidOption, match="unknown storage profile 'gcs'"):
        profiles.store("gcs")


def test_a_profiles_file_with_unknown_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("profiles:\n  default:\n    endpoint: http://typo\n")
    with pytest.raises(ConfigError, match="endpoint"):
        load_settings(storage_profiles=path).profiles()


def test_a_profile_reads_its_key_files_again_when_they_change(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "AWS_ACCESS_KEY_ID").write_text("old-key")
    (creds / "AWS_SECRET_ACCESS_KEY").write_text("old-secret")
    path = tmp_path / "profiles.yaml"
    path.write_text(
        "profiles:\n  default:\n    endpointUrl: http://minio:9000\n"
        f"    writeBuckets: [out]\n    credentialsDir: {creds}\n"
    )
    profiles = load_settings(storage_profiles=path).profiles()
    first = profiles.store(None)
    assert profiles.store(None) is first  # unchanged files: the same client
    # As the kubelet rotates a Secret volume: new files moved over the old ones.
    for name, value in (("AWS_ACCESS_KEY_ID", "new-key"), ("AWS_SECRET_ACCESS_KEY", "new-sec")):
        (creds / f".{name}").write_text(value)
        (creds / f".{name}").replace(creds / name)
    rotated = profiles.store(None)
    assert rotated.settings.access_key_id == "new-key"
    assert rotated.settings.secret_access_key == "new-sec"
    # Half-way through an update (a file missing): the keys in hand are kept.
    (creds / "AWS_SECRET_ACCESS_KEY").unlink()
    assert profiles.store(None).settings.secret_access_key == "new-sec"
