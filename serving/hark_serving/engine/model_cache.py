"""The node's model cache: weights digests that survive restarts, and its file lock.

Both int8 paths (torch's quantized weights in `engine.int8`, the ONNX export in
`engine.onnx_export`) key what they cache by the SHA-256 of model.pt and build
it under a file lock, so replicas that start together build it once. Nothing
here imports torch: the ONNX Runtime path starts without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock

from hark_serving.engine.model_source import file_sha256

log = logging.getLogger(__name__)


def stamp(file: Path) -> dict[str, int]:
    st = file.stat()
    # ctime too: a write in place that restores the mtime still moves the ctime.
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "inode": st.st_ino,
    }


def weights_digest(weights: Path, cache: Path) -> str:
    """SHA-256 of `weights`, remembered under `cache` while the file's size, times and
    inode stay the same: hashing a full model.pt costs about a second per start."""
    weights = weights.resolve()
    memo = (
        cache / "int8" / "digests" / (hashlib.sha256(str(weights).encode()).hexdigest() + ".json")
    )
    seen = stamp(weights)
    with contextlib.suppress(OSError, ValueError):
        known = json.loads(memo.read_text())
        if known.get("path") == str(weights) and known.get("stamp") == seen:
            return str(known["sha256"])
    digest = file_sha256(weights)
    if stamp(weights) == seen:  # not changed while it was read
        record = {"path": str(weights), "stamp": seen, "sha256": digest}
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".digest-", dir=memo.parent)
            with os.fdopen(fd, "w") as f:
                json.dump(record, f)
            os.replace(tmp, memo)
        except OSError as exc:  # a read-only cache: hashed again next time
            log.debug("could not remember the digest of %s in %s: %s", weights, memo, exc)
    return digest


def _acquire(lock: Path) -> FileLock | None:
    """The cache file's lock, held; None (with a warning) when the cache is not writable."""
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        held = FileLock(lock)
        held.acquire()
    except OSError as exc:
        log.warning(
            "model cache %s is not writable (%s): the model is quantized or exported for "
            "this process only; point HARK_MODEL_CACHE at a writable directory, or build them "
            "there ahead of time with `hark model quantize` or `hark model export`",
            lock.parent,
            exc,
        )
        return None
    return held


@contextlib.contextmanager
def cache_lock(lock: Path) -> Iterator[bool]:
    """Hold the cache file's lock; yields False (unlocked) when the cache is not writable."""
    held = _acquire(lock)
    try:
        yield held is not None
    finally:
        if held is not None:
            held.release()
