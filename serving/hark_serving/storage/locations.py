"""Input and output locations, local or S3, behind one small interface.

Inputs are listed lazily (a page at a time for S3, a directory walk locally)
and fetched to a local file only when they are about to be decoded. Outputs
are written whole: local files by rename, S3 objects by a single PUT.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from hark_serving.errors import InvalidUri, ObjectNotFound
from hark_serving.storage.uris import (
    S3Uri,
    as_prefix,
    is_s3,
    matches,
    parse_s3_uri,
    relative_key,
    safe_relative,
)

if TYPE_CHECKING:  # the caller brings a store; boto3 is not imported for local paths
    from hark_serving.storage.s3 import S3Store

# `-` as an input is the audio on standard input, named `stdin` under the destination.
STDIN = "-"
STDIN_NAME = "stdin"


@dataclass(frozen=True)
class InputRef:
    """One audio file to transcribe."""

    uri: str  # s3://bucket/key or an absolute local path
    relative: str  # its path under the input root, kept under the destination
    size: int
    etag: str  # S3 ETag, or a size/mtime fingerprint for local files


def local_fingerprint(path: Path) -> str:
    st = path.stat()
    return f"local-{st.st_size}-{st.st_mtime_ns}"


def _local_inputs(root: Path, include: Sequence[str], exclude: Sequence[str]) -> Iterator[InputRef]:
    if root.is_file():
        yield InputRef(str(root.resolve()), root.name, root.stat().st_size, local_fingerprint(root))
        return
    if not root.is_dir():
        raise ObjectNotFound("no such file or directory", subject=str(root))
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if matches(rel, include, exclude):
                yield InputRef(
                    str(path.resolve()), rel, path.stat().st_size, local_fingerprint(path)
                )


def _s3_inputs(
    store: S3Store, uri: S3Uri, include: Sequence[str], exclude: Sequence[str]
) -> Iterator[InputRef]:
    if not uri.is_prefix:
        info = store.head(uri)
        if info is not None:
            yield InputRef(str(uri), relative_key(uri.key, uri.key), info.size, info.clean_etag)
            return
        uri = as_prefix(uri)  # `s3://b/folder` without the slash means the folder
    for obj in store.iter_objects(uri):
        if obj.key.endswith("/"):
            continue  # folder placeholder objects
        rel = relative_key(obj.key, uri.key)
        if matches(rel, include, exclude):
            yield InputRef(f"s3://{uri.bucket}/{obj.key}", rel, obj.size, obj.clean_etag)


def list_inputs(
    root: str, store: S3Store | None, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> Iterator[InputRef]:
    if root == STDIN:
        # Size and fingerprint are unknown until it is read; it is never "already current".
        yield InputRef(STDIN, STDIN_NAME, 0, "")
        return
    if is_s3(root):
        if store is None:
            raise InvalidUri("S3 input given but no S3 store configured", subject=root)
        yield from _s3_inputs(store, parse_s3_uri(root), include, exclude)
    else:
        yield from _local_inputs(Path(root).expanduser(), include, exclude)


@contextlib.contextmanager
def fetched(ref: InputRef, store: S3Store | None, tmp_dir: Path | None = None) -> Iterator[Path]:
    """A local path holding the input, removed afterwards if it was downloaded (or piped)."""
    if ref.uri == STDIN:
        fd, name = tempfile.mkstemp(prefix="hark-stdin-", dir=tmp_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(sys.stdin.buffer, f)
            yield Path(name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
        return
    if not is_s3(ref.uri):
        yield Path(ref.uri)
        return
    assert store is not None
    suffix = Path(ref.relative).suffix[:16]
    fd, name = tempfile.mkstemp(prefix="hark-in-", suffix=suffix, dir=tmp_dir)
    os.close(fd)
    try:
        store.download(parse_s3_uri(ref.uri), Path(name))
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


class OutputLocation(Protocol):
    def uri_for(self, name: str) -> str: ...
    def read_bytes(self, name: str) -> bytes | None: ...
    def write(
        self, name: str, data: bytes, content_type: str, metadata: dict[str, str]
    ) -> None: ...
    def delete(self, name: str) -> None: ...


class LocalOutput:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        return self.root / safe_relative(name)

    def uri_for(self, name: str) -> str:
        return str(self._path(name))

    def read_bytes(self, name: str) -> bytes | None:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes, content_type: str, metadata: dict[str, str]) -> None:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".hark-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)  # readers see the old file or the new one, never half
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(name).unlink()


class S3Output:
    def __init__(self, store: S3Store, prefix: S3Uri) -> None:
        self.store = store
        self.prefix = as_prefix(prefix)
        store.check_allowed(self.prefix)

    def uri_for(self, name: str) -> str:
        return str(self.prefix.join(name))

    def read_bytes(self, name: str) -> bytes | None:
        try:
            return self.store.get_bytes(self.prefix.join(name))
        except ObjectNotFound:
            return None

    def write(self, name: str, data: bytes, content_type: str, metadata: dict[str, str]) -> None:
        self.store.put_bytes(self.prefix.join(name), data, content_type, metadata)

    def delete(self, name: str) -> None:
        self.store.delete(self.prefix.join(name))


def output_location(dest: str, store: S3Store | None) -> OutputLocation:
    if is_s3(dest):
        if store is None:
            raise InvalidUri("S3 destination given but no S3 store configured", subject=dest)
        return S3Output(store, parse_s3_uri(dest))
    return LocalOutput(Path(dest).expanduser())
