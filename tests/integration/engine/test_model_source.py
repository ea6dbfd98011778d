"""Model sources: a local directory, a hub id from the node cache, an s3:// prefix copied once."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from hark_serving.engine.model_source import resolve_model
from hark_serving.errors import ModelError
from hark_serving.storage.s3 import S3Store


def upload_dir(s3: Any, src: Path, bucket: str, prefix: str) -> None:
    for f in sorted(src.iterdir()):
        s3.upload_file(str(f), bucket, prefix + f.name)


@pytest.mark.integration
def test_an_s3_model_is_copied_once_verified_and_reused(
    s3: Any,
    bucket: str,
    store: S3Store,
    tiny_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    upload_dir(s3, tiny_model_dir, bucket, "models/sv/")
    uri = f"s3://{bucket}/models/sv/"
    downloads: list[str] = []
    real = store.download

    def counting(u, dest):  # type: ignore[no-untyped-def]
        downloads.append(str(u))
        return real(u, dest)

    monkeypatch.setattr(store, "download", counting)
    results: list[Path] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(resolve_model(uri, tmp_path, store=store).path)
        )
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    local = results[0]
    assert sorted(p.name for p in local.iterdir() if not p.name.startswith(".")) == sorted(
        p.name for p in tiny_model_dir.iterdir()
    )
    assert len(downloads) == len(list(tiny_model_dir.iterdir())), "three replicas, one copy"
    assert (local / "model.pt").read_bytes() == (tiny_model_dir / "model.pt").read_bytes()

    downloads.clear()
    assert resolve_model(uri, tmp_path, store=store).path == local
    assert downloads == []

    s3.put_object(
        Bucket=bucket,
        Key="models/sv/config.yaml",
        Body=(tiny_model_dir / "config.yaml").read_bytes() + b"\n",
    )
    assert resolve_model(uri, tmp_path, store=store).path == local
    assert len(downloads) == len(list(tiny_model_dir.iterdir())), "a changed prefix is copied again"

    from hark_serving.engine.sensevoice import SenseVoice

    assert SenseVoice(local, source=uri, device="cpu").info.source == uri


@pytest.mark.integration
def test_an_empty_s3_prefix_is_a_clear_error(store: S3Store, bucket: str, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no objects under this prefix"):
        resolve_model(f"s3://{bucket}/nothing/", tmp_path, store=store)
