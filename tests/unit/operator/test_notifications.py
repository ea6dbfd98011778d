"""Bucket notifications as plain data: which objects an S3 event set announces, which
Watch jobs they go to, and how a job's buffer of notified keys behaves."""

from __future__ import annotations

from typing import Any

from hark_operator.jobs.intake import NotifiedKeys
from hark_operator.notifications import DropFolder, NewObject, created_objects, keys_by_job


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


def test_each_job_gets_the_keys_in_its_drop_folder() -> None:
    folders = {
        "ns/calls": DropFolder("calls", "in/"),
        "ns/other-bucket": DropFolder("meetings", "in/"),
        "ns/deeper": DropFolder("calls", "in/sub/"),
        "ns/whole": DropFolder("calls", ""),
    }
    objects = [NewObject("calls", "in/a.wav"), NewObject("calls", "in/sub/b.wav")]
    assert keys_by_job(objects, folders) == {
        "ns/calls": ["in/a.wav", "in/sub/b.wav"],
        "ns/deeper": ["in/sub/b.wav"],
        "ns/whole": ["in/a.wav", "in/sub/b.wav"],
    }
    assert keys_by_job([NewObject("calls", "out/a.wav.json")], folders) == {
        "ns/whole": ["out/a.wav.json"]
    }
    assert keys_by_job([NewObject("elsewhere", "in/a.wav")], folders) == {}
    assert keys_by_job([], folders) == {}


def test_notified_keys_are_taken_in_order_once_each() -> None:
    keys = NotifiedKeys(limit=5)
    assert keys.add(["a", "b", "a"]) == 0
    assert keys.add(["c"]) == 0
    assert len(keys) == 3
    assert keys.take(2) == ["a", "b"]
    assert keys.take(5) == ["c"]
    assert keys.take(5) == [] and not keys


def test_a_burst_larger_than_the_buffer_is_dropped_for_a_scan() -> None:
    keys = NotifiedKeys(limit=3)
    assert keys.add(["a", "b"]) == 0
    assert keys.add(["c", "d"]) == 4  # all of them: the scan finds every one
    assert len(keys) == 0
    assert keys.add(["e"]) == 0 and keys.take(3) == ["e"]
