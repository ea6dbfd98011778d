"""Bucket notifications as plain data: which objects an S3 event set announces, and
which Watch jobs they wake."""

from __future__ import annotations

from typing import Any

from hark_operator.notifications import DropFolder, NewObject, created_objects, jobs_to_wake


def record(name: str, bucket: str, key: str) -> dict[str, Any]:
    return {"eventName": name, "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}


def test_created_objects_are_read_from_minio_and_s3_records() -> None:
    body = {
        "EventName": "s3:ObjectCreated:Put",
        "Records": [
            record("s3:ObjectCreated:Put", "calls", "in/a+call%2B1.wav"),  # MinIO
            record("ObjectCreated:CompleteMultipartUpload", "calls", "in/b.wav"),  # AWS S3
            record("s3:ObjectRemoved:Delete", "calls", "in/c.wav"),
        ],
    }
    assert created_objects(body) == [
        NewObject("calls", "in/a call+1.wav"),
        NewObject("calls", "in/b.wav"),
    ]


def test_records_without_bucket_or_key_and_other_bodies_are_ignored() -> None:
    assert created_objects({}) == []
    assert created_objects({"Records": ["junk", {"eventName": "s3:ObjectCreated:Put"}]}) == []
    assert created_objects({"Records": [record("s3:ObjectCreated:Put", "", "k")]}) == []


def test_only_jobs_whose_drop_folder_holds_the_object_wake() -> None:
    folders = {
        "ns/calls": DropFolder("calls", "in/"),
        "ns/other-bucket": DropFolder("meetings", "in/"),
        "ns/deeper": DropFolder("calls", "in/sub/"),
        "ns/whole": DropFolder("calls", ""),
    }
    objects = [NewObject("calls", "in/a.wav")]
    assert jobs_to_wake(objects, folders) == {"ns/calls", "ns/whole"}
    assert jobs_to_wake([NewObject("calls", "out/a.wav.json")], folders) == {"ns/whole"}
    assert jobs_to_wake([], folders) == set()
