"""MinIO is a real S3: multipart uploads, paginated listings, S3 ETag semantics."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

MIB = 2**20


def test_multipart_upload_has_s3_multipart_etag(s3: S3Client, bucket: str) -> None:
    parts = [os.urandom(5 * MIB), os.urandom(6 * MIB), os.urandom(123)]  # last may be small
    upload = s3.create_multipart_upload(Bucket=bucket, Key="audio/big.wav")
    done = []
    for number, data in enumerate(parts, start=1):
        part = s3.upload_part(
            Bucket=bucket,
            Key="audio/big.wav",
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=data,
        )
        assert part["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        done.append({"PartNumber": number, "ETag": part["ETag"]})
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="audio/big.wav",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": done},
    )

    head = s3.head_object(Bucket=bucket, Key="audio/big.wav")
    body = s3.get_object(Bucket=bucket, Key="audio/big.wav")["Body"].read()

    # S3's multipart ETag: md5 of the concatenated binary part md5s, then "-<parts>".
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    assert head["ETag"] == f'"{hashlib.md5(joined).hexdigest()}-3"'
    assert head["ContentLength"] == sum(map(len, parts))
    assert hashlib.sha256(body).digest() == hashlib.sha256(b"".join(parts)).digest()


def test_listing_thousands_of_keys_pages_by_continuation_token(s3: S3Client, bucket: str) -> None:
    keys = [f"clips/{i:05d}.txt" for i in range(2500)]

    def put(key: str) -> str:
        return str(s3.put_object(Bucket=bucket, Key=key, Body=key.encode())["ETag"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        etags = dict(zip(keys, pool.map(put, keys), strict=True))

    pages = []
    token: str | None = None
    while True:
        kwargs = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=bucket, Prefix="clips/", MaxKeys=1000, **kwargs)
        pages.append(page)
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]

    assert [p["KeyCount"] for p in pages] == [1000, 1000, 500]
    listed = [obj["Key"] for p in pages for obj in p["Contents"]]
    assert listed == keys  # complete, no duplicates, in lexicographic order
    for p in pages:
        for obj in p["Contents"]:
            expected = f'"{hashlib.md5(obj["Key"].encode()).hexdigest()}"'
            assert obj["ETag"] == expected == etags[obj["Key"]]


def test_bucket_fixture_gives_an_empty_private_bucket(s3: S3Client, bucket: str) -> None:
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert bucket in names


def test_missing_key_is_a_real_404(s3: S3Client, bucket: str) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=bucket, Key="nope")
    assert err.value.response["Error"]["Code"] == "404"
