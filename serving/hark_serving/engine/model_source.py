"""Where model weights come from: a hub id, a local directory, or an s3:// prefix.

Whatever the source, the result is a local directory in the published
SenseVoiceSmall layout that funasr loads. Remote sources are copied once per
node into the cache and reused:

- hub ids go through ModelScope (or Hugging Face) snapshot downloads, at the
  revision given as `id@revision` (a tag or commit, so the weights cannot change
  under a running service); a copy already in the cache is used without asking
  the hub, after checking it against the SHA-256 digests recorded when it was
  downloaded (a truncated or altered file fails the start);
- `s3://bucket/prefix/` is copied object by object into a temporary directory,
  checked against the listing (size and ETag), and renamed into place, with a
  file lock so concurrent replicas on one node copy it once. A later start
  re-lists the prefix and reuses the copy when nothing changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

from hark_serving.errors import ModelError
from hark_serving.storage.uris import as_prefix, is_s3, parse_s3_uri

if TYPE_CHECKING:  # boto3 is imported only where a model comes from S3
    from hark_serving.storage.s3 import S3Store

log = logging.getLogger(__name__)

REQUIRED_FILES = ("config.yaml", "model.pt")
MANIFEST = ".hark-manifest.json"
LAYOUT_HINT = (
    "a SenseVoiceSmall directory holds config.yaml, model.pt, am.mvn, "
    "chn_jpn_yue_eng_ko_spectok.bpe.model and configuration.json, as published as "
    "iic/SenseVoiceSmall; copy the whole directory (for example `modelscope download "
    "iic/SenseVoiceSmall --local_dir DIR`) and point HARK_MODEL / --model at it"
)


@dataclass(frozen=True)
class ResolvedModel:
    path: Path
    source: str  # what the user named, for results and logs
    # SHA-256 of model.pt when this start has already hashed it (a verified hub copy).
    weights_sha256: str | None = None


def check_layout(path: Path, source: str) -> None:
    """Fail early, naming the missing file, if `path` is not a model directory."""
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    conf = path / "configuration.json"
    if conf.is_file():
        metas = json.loads(conf.read_text()).get("file_path_metas", {})
        for value in _leaf_values(metas):
            if isinstance(value, str) and not (path / value).exists():
                missing.append(value)
    if missing:
        raise ModelError(
            f"{source}: not a SenseVoiceSmall model directory, missing {', '.join(missing)} "
            f"in {path}; {LAYOUT_HINT}"
        )


def _leaf_values(obj: object) -> Iterator[object]:
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _leaf_values(v)
    else:
        yield obj


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing), across processes, on any OS."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path):
        yield


def _cache_dir_for(cache: Path, kind: str, name: str) -> Path:
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return cache / kind / f"{slug}-{digest}"


def from_s3(uri: str, cache: Path, store: S3Store) -> ResolvedModel:
    prefix = as_prefix(parse_s3_uri(uri))
    listing = {
        o.key[len(prefix.key) :]: {"size": o.size, "etag": o.clean_etag}
        for o in store.iter_objects(prefix)
        if not o.key.endswith("/")
    }
    if not listing:
        raise ModelError(f"{uri}: no objects under this prefix; upload the model directory there")
    target = _cache_dir_for(cache, "s3", str(prefix))
    with locked(target.with_suffix(".lock")):
        manifest = target / MANIFEST
        if manifest.is_file() and json.loads(manifest.read_text()) == listing:
            log.info("model %s: using the cached copy in %s", uri, target)
            return ResolvedModel(target, uri)
        tmp = Path(tempfile.mkdtemp(prefix=".copy-", dir=target.parent))
        try:
            for rel, expected in sorted(listing.items()):
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                got = store.download(prefix.join(rel), dest)
                if got.size != expected["size"] or got.clean_etag != expected["etag"]:
                    raise ModelError(
                        f"{uri}{rel} changed while it was copied (size/ETag differ); retry"
                    )
                if dest.stat().st_size != expected["size"]:
                    raise ModelError(f"{uri}{rel}: short read, copy incomplete; retry")
            (tmp / MANIFEST).write_text(json.dumps(listing, sort_keys=True))
            check_layout(tmp, uri)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("model %s: copied into %s", uri, target)
    return ResolvedModel(target, uri)


def split_revision(ref: str) -> tuple[str, str | None]:
    """`iic/SenseVoiceSmall@v2.0.4` as (`iic/SenseVoiceSmall`, `v2.0.4`)."""
    model_id, sep, revision = ref.partition("@")
    if sep and not revision:
        raise ModelError(f"{ref}: name a revision after '@' (a tag or a commit)")
    return model_id, revision or None


def file_sha256(file: Path) -> str:
    """SHA-256 of one file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with file.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_digests(path: Path) -> dict[str, str]:
    """SHA-256 of every file under `path` (the manifest itself left out)."""
    return {
        file.relative_to(path).as_posix(): file_sha256(file)
        for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name != MANIFEST)
    }


def record_digests(path: Path) -> dict[str, str]:
    digests = file_digests(path)
    (path / MANIFEST).write_text(json.dumps(digests, sort_keys=True, indent=1))
    return digests


def verify_digests(path: Path, source: str) -> dict[str, str]:
    """The copy's digests; raise `ModelError` naming a file that differs from the download."""
    manifest = path / MANIFEST
    recorded: dict[str, str] = json.loads(manifest.read_text())
    found = file_digests(path)
    for rel, digest in sorted(recorded.items()):
        if found.get(rel) != digest:
            what = "is missing" if rel not in found else "differs from the downloaded file"
            raise ModelError(
                f"{source}: the cached {rel} in {path} {what}; delete {path} so the model "
                "is downloaded again"
            )
    return found


HUB_NAMES = {"ms": "ModelScope", "hf": "Hugging Face"}


def hub_cached(ref: str, cache: Path, hub: str = "ms") -> Path | None:
    """The node-cache copy of a hub model (`id` or `id@revision`), or None; never asks the hub."""
    model_id, revision = split_revision(ref)
    try:
        return _snapshot(model_id, revision, cache / "hub" / hub, hub, local_only=True)
    except Exception:  # hubs raise many kinds of "not cached"
        return None


def from_hub(ref: str, cache: Path, hub: str = "ms") -> ResolvedModel:
    model_id, revision = split_revision(ref)
    if revision is None:
        log.warning(
            "model %s: no revision pinned; name one as %s@<tag or commit> so the weights "
            "cannot change under the service",
            model_id,
            model_id,
        )
    hub_cache = cache / "hub" / hub
    # A copy already on this node wins: replicas must start when the hub is slow or down.
    path = hub_cached(ref, cache, hub)
    if path is None:
        log.info("model %s: not cached in %s; downloading", ref, hub_cache)
        try:
            path = _snapshot(model_id, revision, hub_cache, hub, local_only=False)
        except Exception as exc:
            raise ModelError(
                f"{ref}: not cached in {hub_cache} and the download from the "
                f"{HUB_NAMES.get(hub, hub)} hub failed ({type(exc).__name__}: {exc}); on a "
                "machine without internet, download the model elsewhere, copy the directory "
                "here and set HARK_MODEL to it (or to an s3:// copy), or fill HARK_MODEL_CACHE"
            ) from exc
    with locked(path.with_name(path.name + ".lock")):
        # Recorded when just downloaded (or cached before digests were recorded).
        verified = (path / MANIFEST).is_file()
        digests = verify_digests(path, ref) if verified else record_digests(path)
    check_layout(path, ref)
    return ResolvedModel(path, ref, digests.get("model.pt"))


def _snapshot(model_id: str, revision: str | None, cache: Path, hub: str, local_only: bool) -> Path:
    if hub == "hf":
        from huggingface_hub import snapshot_download as hf_snapshot

        return Path(
            hf_snapshot(
                model_id, revision=revision, cache_dir=str(cache), local_files_only=local_only
            )
        )
    from modelscope.hub.snapshot_download import snapshot_download

    return Path(
        snapshot_download(
            model_id,
            revision=revision or "master",
            cache_dir=str(cache),
            local_files_only=local_only,
        )
    )


def resolve_model(
    ref: str, cache: Path, *, store: S3Store | None = None, hub: str = "ms"
) -> ResolvedModel:
    """A local model directory for `ref` (hub id, local path or s3:// prefix)."""
    if is_s3(ref):
        if store is None:
            raise ModelError(f"{ref}: an s3:// model needs S3 settings")
        return from_s3(ref, cache, store)
    local = Path(ref).expanduser()
    if local.exists() or ref.startswith((".", "/", "~")):
        if not local.is_dir():
            raise ModelError(f"{ref}: no such model directory")
        check_layout(local, ref)
        return ResolvedModel(local.resolve(), ref)
    return from_hub(ref, cache, hub)
