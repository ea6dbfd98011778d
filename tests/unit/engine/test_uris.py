"""URI arithmetic: output keys keep relative paths and never escape their prefix."""

from __future__ import annotations

import pytest

from hark_serving.errors import InvalidUri
from hark_serving.storage.uris import (
    S3Uri,
    matches,
    output_name,
    parse_s3_uri,
    relative_key,
    safe_relative,
)


def test_it_maps_an_input_to_its_output_as_design_section_5_says() -> None:
    rel = relative_key("p/a/b.mp3", "p/")
    assert rel == "a/b.mp3"
    assert (
        str(parse_s3_uri("s3://out/q/").join(output_name(rel, "json"))) == "s3://out/q/a/b.mp3.json"
    )
    assert output_name(rel, "error.json") == "a/b.mp3.error.json"


def test_a_single_object_input_keeps_its_file_name() -> None:
    assert relative_key("p/a/b.mp3", "p/a/b.mp3") == "b.mp3"


@pytest.mark.parametrize(
    "uri",
    [
        "http://bucket/key",
        "s3://Bad_Bucket/x",
        "s3://ab/x",
        "s3://bucket//x",
        "s3://bucket/a/../b",
        "s3://bucket//etc/passwd",
        "s3://bucket/./x",
    ],
)
def test_bad_uris_are_rejected_with_the_uri_named(uri: str) -> None:
    with pytest.raises(InvalidUri) as err:
        parse_s3_uri(uri)
    assert uri in str(err.value)


@pytest.mark.parametrize("rel", ["", "/abs", "../up", "a/../../b", "a\\b", "nul\x00"])
def test_relative_paths_cannot_escape(rel: str) -> None:
    with pytest.raises(InvalidUri):
        safe_relative(rel)


def test_parse_keeps_bucket_and_key() -> None:
    assert parse_s3_uri("s3://calls-in/2026/11/") == S3Uri("calls-in", "2026/11/")
    assert parse_s3_uri("s3://calls-in/2026/11/").is_prefix
    assert not parse_s3_uri("s3://calls-in/a.wav").is_prefix


def test_default_include_takes_audio_and_video_and_skips_the_rest() -> None:
    assert matches("a/b.MP3", (), ())
    assert matches("x.webm", (), ())
    assert not matches("notes.txt", (), ())
    assert not matches("a/b.mp3.json", (), ())
    assert not matches(".hidden.wav", (), ())
    assert not matches("_hark/x.wav", (), ())


def test_include_and_exclude_globs() -> None:
    assert matches("calls/x.wav", ["calls/*"], [])
    assert not matches("other/x.wav", ["calls/*"], [])
    assert not matches("calls/tmp.wav", [], ["tmp.*"])


# The one key validation the planner and the worker share, with AWS S3's rules
# (keys up to 1024 bytes of UTF-8) and those of S3 servers on file systems.
@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("in/a b.wav", None),
        ("in/ünïcödé/語音.wav", None),
        ("in/a+b=c&d.wav", None),
        ("in/" + "x" * 255, None),
        ("x" * 1024, "segment is 1024 bytes"),
        ("/".join(["y" * 200] * 5) + "/" + "z" * 19, None),  # exactly 1024 bytes
        ("/".join(["y" * 200] * 5) + "/" + "z" * 20, "1025 bytes"),
        ("/".join(["é" * 100] * 5) + "/" + "z" * 20, "1025 bytes"),  # bytes, not characters
        ("in/a//b.wav", "empty path segment"),
        ("./b.wav", "'.' or '..'"),
        ("in/../b.wav", "'.' or '..'"),
        ("/in/b.wav", "starts with '/'"),
        ("in/" + "x" * 256, "256 bytes"),
        ("", "empty"),
    ],
)
def test_key_problem_follows_the_s3_rules(key: str, problem: str | None) -> None:
    from hark_serving.storage.uris import key_problem

    found = key_problem(key)
    if problem is None:
        assert found is None, found
    else:
        assert found is not None and problem in found, found


def test_an_output_key_past_1024_bytes_is_a_problem_of_its_output() -> None:
    from hark_serving.storage.uris import output_key_problem

    base = "out/" + "/".join(["d" * 200] * 5)  # 1004 bytes; + ".error.json" = 1015
    assert output_key_problem(base) is None
    assert "its output key" in (output_key_problem(base + "x" * 10) or "")


def test_the_worker_refuses_what_the_planner_refuses() -> None:
    from hark_serving.storage.uris import key_problem

    for key in ("in/a//b.wav", "./b.wav", "in/" + "x" * 256):
        assert key_problem(key) is not None
        with pytest.raises(InvalidUri, match="rename the object"):
            parse_s3_uri(f"s3://bucket/{key}")
