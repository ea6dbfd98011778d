"""URI and key arithmetic: pure functions, no I/O.

Output keys are derived from input keys by keeping the path relative to the
job's input prefix; nothing a client sends can climb out of the output prefix
(no `..`, no absolute keys, no empty path segments).

`key_problem` is the one key validation the planner (operator) and the worker
(`POST /v1/items`) share, so a key one of them accepts the other never refuses
in a loop. It takes the rules of AWS S3 (at most 1024 bytes of UTF-8) and of
the S3 servers Hark must run on, which map keys onto file systems (MinIO
refuses empty segments, `.` and `..` segments, and segments over 255 bytes).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass

from hark_serving.errors import InvalidUri

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
MAX_KEY_BYTES = 1024  # AWS S3
MAX_SEGMENT_BYTES = 255  # a file name on the file systems S3 servers such as MinIO use
# The longest suffix an output base gets: `<base>.error.json`.
LONGEST_OUTPUT_SUFFIX = ".error.json"

AUDIO_EXTENSIONS = (
    "wav", "mp3", "m4a", "aac", "flac", "ogg", "opus", "oga", "webm", "mp4", "mkv", "mov",
    "wma", "amr", "aiff", "aif", "caf", "3gp", "mka",
)  # fmt: skip
DEFAULT_INCLUDE: tuple[str, ...] = tuple(f"*.{ext}" for ext in AUDIO_EXTENSIONS)
# Where Hark keeps its own bookkeeping under an output prefix.
HARK_DIR = "_hark"


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def is_prefix(self) -> bool:
        return self.key == "" or self.key.endswith("/")

    def join(self, relative: str) -> S3Uri:
        return S3Uri(self.bucket, self.key + safe_relative(relative))


def key_problem(key: str) -> str | None:
    """Why an object key cannot be read or written safely, or None when it can."""
    if not key:
        return "the key is empty"
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_BYTES:
        return f"the key is {size} bytes long; S3 allows {MAX_KEY_BYTES}"
    if key.startswith("/"):
        return "the key starts with '/'"
    if "\x00" in key:
        return "the key contains a NUL character"
    segments = key.rstrip("/").split("/")
    if any(s == "" for s in segments):
        return "the key has an empty path segment ('//')"
    if any(s in (".", "..") for s in segments):
        return "the key has a '.' or '..' path segment"
    longest = max(len(s.encode("utf-8", "surrogatepass")) for s in segments)
    if longest > MAX_SEGMENT_BYTES:
        return f"a path segment is {longest} bytes long; at most {MAX_SEGMENT_BYTES} are allowed"
    return None


def output_key_problem(base_key: str) -> str | None:
    """Why the outputs of an output base (`<base>.json` … `<base>.error.json`) cannot be
    written, or None."""
    problem = key_problem(base_key + LONGEST_OUTPUT_SUFFIX)
    return f"its output key: {problem}" if problem else None


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def parse_s3_uri(uri: str) -> S3Uri:
    """`s3://bucket/key` → S3Uri, rejecting what S3 or safety would refuse."""
    if not is_s3(uri):
        raise InvalidUri("expected s3://bucket/prefix/", subject=uri)
    rest = uri[len("s3://") :]
    bucket, _, key = rest.partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise InvalidUri(
            f"{bucket!r} is not a valid bucket name (3-63 lowercase letters, digits, '.', '-')",
            subject=uri,
        )
    problem = key_problem(key) if key else None
    if problem is not None:
        raise InvalidUri(f"{problem}; rename the object", subject=uri)
    return S3Uri(bucket, key)


def as_prefix(uri: S3Uri) -> S3Uri:
    """A prefix URI always ends with `/` (or is the bucket root)."""
    return uri if uri.is_prefix else S3Uri(uri.bucket, uri.key + "/")


def safe_relative(path: str) -> str:
    """A relative key that stays inside its prefix, or InvalidUri."""
    norm = posixpath.normpath(path) if path else ""
    if (
        not path
        or path.startswith("/")
        or norm.startswith("..")
        or "/../" in f"/{path}/"
        or "\\" in path
        or "\x00" in path
    ):
        raise InvalidUri("relative paths must stay inside the prefix", subject=path)
    return path


def relative_key(key: str, prefix: str) -> str:
    """The part of `key` under `prefix`; a single-object input keeps its file name."""
    if prefix and not prefix.endswith("/"):
        # The input URI named one object: its relative path is its base name.
        return safe_relative(posixpath.basename(key))
    if not key.startswith(prefix):
        raise InvalidUri(f"{key!r} is not under {prefix!r}", subject=key)
    return safe_relative(key[len(prefix) :])


def output_name(relative: str, fmt: str) -> str:
    """`a/b.mp3` → `a/b.mp3.json` (and `.srt`, `.vtt`, `.txt`, `.error.json`)."""
    return f"{safe_relative(relative)}.{fmt}"


def error_name(relative: str) -> str:
    return output_name(relative, "error.json")


def matches(relative: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """Glob match on the relative path and on the base name, extensions case-blind."""
    lowered = relative.lower()
    base = posixpath.basename(lowered)

    def hit(patterns: Sequence[str]) -> bool:
        return any(
            fnmatch.fnmatchcase(lowered, p.lower()) or fnmatch.fnmatchcase(base, p.lower())
            for p in patterns
        )

    if posixpath.basename(relative).startswith(".") or relative.startswith(HARK_DIR + "/"):
        return False
    return hit(include or DEFAULT_INCLUDE) and not hit(exclude)
