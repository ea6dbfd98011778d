"""A thin S3 client for Hark: listing, reading and whole-object writes, with clear errors.

boto3 retries throttling and 5xx itself (standard mode); what is left after
that becomes a `StorageUnavailable` (transient) or a permanent `StorageError`
naming the URI. Every object is written with one PUT, so a reader never sees a
half-written transcript. An allow-list of buckets, when set, is enforced on
every call.

Listings carry one ISO 8601 time per object, which botocore parses with
dateutil (tens of microseconds each: most of the CPU a listing of small objects
costs); `parse_time` reads them with `datetime.fromisoformat` and leaves every
other form (HTTP dates in headers, epochs) to botocore's parser.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ConnectTimeoutError
from botocore.utils import parse_timestamp

from hark_serving.errors import (
    AccessDenied,
    BucketNotAllowed,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
)
from hark_serving.storage.uris import S3Uri

log = logging.getLogger(__name__)

_NOT_FOUND = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}
_DENIED = {
    "403",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
}
_TRANSIENT = {
    "500",
    "502",
    "503",
    "504",
    "SlowDown",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "XMinioServerNotInitialized",
}


def parse_time(value: Any) -> datetime:
    """A timestamp from an S3 response: ISO 8601 with its offset (as listings carry it)
    directly, anything else as botocore reads it."""
    if isinstance(value, str) and "T" in value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
    stamp: datetime = parse_timestamp(value)
    return stamp


def _session() -> botocore.session.Session:
    session = botocore.session.get_session()
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=parse_time
    )
    return session


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: datetime | None = None

    @property
    def clean_etag(self) -> str:
        return self.etag.strip('"')


@dataclass(frozen=True)
class S3Settings:
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    addressing_style: str = "auto"
    max_attempts: int = 5
    connect_timeout: float = 5.0
    read_timeout: float = 60.0


def _translate(exc: Exception, uri: str) -> StorageError:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if code in _NOT_FOUND or status == "404":
            return ObjectNotFound("no such object or bucket", subject=uri)
        if code in _DENIED or status == "403":
            return AccessDenied(
                f"access denied ({code}); check the storage profile's credentials and bucket policy",
                subject=uri,
            )
        if code in _TRANSIENT or status.startswith("5"):
            return StorageUnavailable(f"the object store is failing ({code})", subject=uri)
        return StorageError(f"S3 error {code}: {exc}", subject=uri)
    if isinstance(exc, (ConnectionError, ConnectTimeoutError, BotoCoreError)):
        return StorageUnavailable(
            f"cannot reach the object store ({type(exc).__name__}); check the endpoint and network",
            subject=uri,
        )
    return StorageError(str(exc), subject=uri)


class S3Store:
    """One S3 endpoint and credential set, optionally limited to some buckets."""

    def __init__(
        self,
        settings: S3Settings | None = None,
        *,
        allowed_buckets: Sequence[str] = (),
        write_buckets: Sequence[str] | None = None,
        restricted: bool = False,
        profile: str = "default",
        client: Any = None,
    ) -> None:
        """`allowed_buckets` may be read (and written, unless `write_buckets` is given).

        A bucket that may be written may be read too (the skip-if-current check
        reads outputs). Without any bucket the store is open to every bucket
        its credentials reach, unless `restricted`: then it is closed to all.
        """
        self.settings = settings or S3Settings()
        writable = allowed_buckets if write_buckets is None else write_buckets
        self.write_buckets = frozenset(writable)
        self.allowed_buckets = frozenset(allowed_buckets) | self.write_buckets
        self.restricted = restricted or bool(self.allowed_buckets)
        self.profile = profile
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            s = self.settings
            style = s.addressing_style
            if style == "auto" and s.endpoint_url:
                style = "path"  # MinIO and Ceph rarely have wildcard DNS for virtual hosts
            self._client = boto3.session.Session(botocore_session=_session()).client(
                "s3",
                endpoint_url=s.endpoint_url or None,
                region_name=s.region or None,
                aws_access_key_id=s.access_key_id or None,
                aws_secret_access_key=s.secret_access_key or None,
                aws_session_token=s.session_token or None,
                config=Config(
                    retries={"max_attempts": s.max_attempts, "mode": "standard"},
                    connect_timeout=s.connect_timeout,
                    read_timeout=s.read_timeout,
                    s3={"addressing_style": style},  # type: ignore[arg-type]
                ),
            )
        return self._client

    def check_allowed(self, uri: S3Uri) -> None:
        """Raise `BucketNotAllowed` unless the profile may read `uri`'s bucket."""
        if self.restricted and uri.bucket not in self.allowed_buckets:
            listed = ", ".join(sorted(self.allowed_buckets)) or "none"
            raise BucketNotAllowed(
                f"bucket {uri.bucket!r} is not in the allowed buckets of storage profile "
                f"{self.profile!r} ({listed}); add it to the profile's readBuckets or "
                "writeBuckets",
                subject=str(uri),
            )

    def check_writable(self, uri: S3Uri) -> None:
        """Raise `BucketNotAllowed` unless the profile may write into `uri`'s bucket."""
        self.check_allowed(uri)
        if self.restricted and uri.bucket not in self.write_buckets:
            listed = ", ".join(sorted(self.write_buckets)) or "none"
            raise BucketNotAllowed(
                f"bucket {uri.bucket!r} is read-only in storage profile {self.profile!r} "
                f"(its writeBuckets: {listed}); write the outputs to one of those",
                subject=str(uri),
            )

    def iter_objects(self, prefix: S3Uri, page_size: int = 1000) -> Iterator[ObjectInfo]:
        """Every object under `prefix`, one page in memory at a time."""
        self.check_allowed(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(
                Bucket=prefix.bucket, Prefix=prefix.key, PaginationConfig={"PageSize": page_size}
            ):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        item["Key"], int(item["Size"]), str(item["ETag"]), item.get("LastModified")
                    )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, str(prefix)) from exc

    def head(self, uri: S3Uri) -> ObjectInfo | None:
        self.check_allowed(uri)
        try:
            r = self.client.head_object(Bucket=uri.bucket, Key=uri.key)
        except (ClientError, BotoCoreError) as exc:
            err = _translate(exc, str(uri))
            if isinstance(err, ObjectNotFound):
                return None
            raise err from exc
        return ObjectInfo(uri.key, int(r["ContentLength"]), str(r["ETag"]), r.get("LastModified"))

    def head_metadata(self, uri: S3Uri) -> dict[str, str] | None:
        """The user metadata of an object (`x-amz-meta-*`), or None if it does not exist."""
        self.check_allowed(uri)
        try:
            r = self.client.head_object(Bucket=uri.bucket, Key=uri.key)
        except (ClientError, BotoCoreError) as exc:
            err = _translate(exc, str(uri))
            if isinstance(err, ObjectNotFound):
                return None
            raise err from exc
        return {str(k).lower(): str(v) for k, v in (r.get("Metadata") or {}).items()}

    def download(self, uri: S3Uri, dest: Path) -> ObjectInfo:
        """Copy an object to `dest`; returns what was read (size, ETag)."""
        self.check_allowed(uri)
        try:
            r = self.client.get_object(Bucket=uri.bucket, Key=uri.key)
            with open(dest, "wb") as f:
                for chunk in r["Body"].iter_chunks(1 << 20):
                    f.write(chunk)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, str(uri)) from exc
        return ObjectInfo(uri.key, int(r["ContentLength"]), str(r["ETag"]), r.get("LastModified"))

    def get_bytes(self, uri: S3Uri) -> bytes:
        self.check_allowed(uri)
        try:
            body: bytes = self.client.get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, str(uri)) from exc
        return body

    def put_bytes(
        self,
        uri: S3Uri,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> None:
        """One PUT: the object appears whole or not at all."""
        self.check_writable(uri)
        try:
            self.client.put_object(
                Bucket=uri.bucket,
                Key=uri.key,
                Body=data,
                ContentType=content_type,
                Metadata=metadata or {},
            )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, str(uri)) from exc

    def put_conditional(
        self, uri: S3Uri, data: bytes, *, if_match: str | None = None
    ) -> str | None:
        """Create `uri` only if it does not exist (`If-None-Match: *`), or replace it only
        if its ETag is still `if_match`; the new ETag, or None when the condition failed."""
        self.check_allowed(uri)
        condition = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"}
        try:
            r = self.client.put_object(
                Bucket=uri.bucket, Key=uri.key, Body=data, ContentType="application/json",
                **condition,
            )  # fmt: skip
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = str(exc.response.get("Error", {}).get("Code", ""))
            # 412: the condition failed; 409: a concurrent conditional write won the race.
            if status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return None
            if if_match and (status == 404 or code in _NOT_FOUND):
                return None  # replaced and released meanwhile
            raise _translate(exc, str(uri)) from exc
        except BotoCoreError as exc:
            raise _translate(exc, str(uri)) from exc
        return str(r["ETag"])

    def get_with_etag(self, uri: S3Uri) -> tuple[bytes, str] | None:
        """An object's bytes and ETag, or None if it does not exist."""
        self.check_allowed(uri)
        try:
            r = self.client.get_object(Bucket=uri.bucket, Key=uri.key)
            return r["Body"].read(), str(r["ETag"])
        except (ClientError, BotoCoreError) as exc:
            err = _translate(exc, str(uri))
            if isinstance(err, ObjectNotFound):
                return None
            raise err from exc

    def delete(self, uri: S3Uri) -> None:
        self.check_writable(uri)
        try:
            self.client.delete_object(Bucket=uri.bucket, Key=uri.key)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, str(uri)) from exc
