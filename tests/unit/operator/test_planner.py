"""The planner: a streaming merge-join of two sorted listings, and the done/pending/failed rule."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from datetime import timedelta

import pytest

from hark_operator.jobs.planner import Planner, ScanTally, classify, merge_join
from hark_serving.errors import BucketNotAllowed
from hark_serving.storage.s3 import ObjectInfo
from hark_serving.storage.uris import S3Uri, parse_s3_uri

from .fakes import EPOCH, FakeStore


def info(key: str, seconds: int = 0) -> ObjectInfo:
    return ObjectInfo(key, 1, '"e"', EPOCH + timedelta(seconds=seconds))


def brute_force(inputs: list[str], outputs: set[str]) -> dict[str, tuple[bool, bool]]:
    return {r: (r + ".json" in outputs, r + ".error.json" in outputs) for r in inputs}


def joined(inputs: list[str], outputs: set[str]) -> dict[str, tuple[bool, bool]]:
    ins = ((r, info(r)) for r in sorted(inputs))
    outs = ((k, info(k)) for k in sorted(outputs))
    return {r: (j is not None, e is not None) for r, _, j, e in merge_join(ins, outs)}


# Names that prefix each other and sort differently once ".json" is appended.
TRICKY = ["x", "x-1", "x-10", "x.mp3", "x.mp3-old.mp3", "x.mp3.bak.mp3", "x.mp3 copy.mp3",
          "a/b.mp3", "a.mp3", "a-b.mp3", "a.error", "a.error.mp3", "b", "b/c", "b.json", "é.mp3"]  # fmt: skip


def test_join_matches_brute_force_on_names_that_prefix_each_other() -> None:
    rng = random.Random(7)
    for _ in range(300):
        inputs = rng.sample(TRICKY, rng.randint(0, len(TRICKY)))
        candidates = [r + s for r in TRICKY for s in (".json", ".error.json", ".srt", ".txt")]
        outputs = set(rng.sample(candidates, rng.randint(0, len(candidates))))
        outputs |= {"zzz.json", "_hark/j/summary.json", "0.json"}  # belong to no input
        assert joined(inputs, outputs) == brute_force(inputs, outputs)


def test_join_matches_brute_force_on_random_keys() -> None:
    rng = random.Random(11)
    alphabet = "ab.-/ _0"
    for _ in range(200):
        inputs = list({"".join(rng.choices(alphabet, k=rng.randint(1, 6))) for _ in range(25)})
        inputs = [r for r in inputs if not r.endswith("/")]
        outputs = {
            r + rng.choice([".json", ".error.json", ".vtt"]) for r in inputs if rng.random() < 0.6
        }
        assert joined(inputs, outputs) == brute_force(inputs, outputs)


def test_join_streams_both_listings() -> None:
    pulled = {"in": 0, "out": 0}

    def inputs() -> Iterator[tuple[str, ObjectInfo]]:
        for i in itertools.count():
            pulled["in"] += 1
            yield f"f{i:09d}.mp3", info("")

    def outputs() -> Iterator[tuple[str, ObjectInfo]]:
        for i in itertools.count():
            pulled["out"] += 1
            yield f"f{i:09d}.mp3.json", info("", 5)

    stream = merge_join(inputs(), outputs())
    first = [next(stream) for _ in range(1000)]
    assert [r for r, *_ in first] == [f"f{i:09d}.mp3" for i in range(1000)]
    assert all(j is not None for _, _, j, _ in first)
    # Only a step ahead of what was produced: nothing is gathered in memory.
    assert pulled["in"] <= 1002 and pulled["out"] <= 1002


@pytest.mark.parametrize(
    ("json_at", "error_at", "overwrite", "expected"),
    [
        (None, None, False, ("pending", False)),
        (30, None, False, ("done", False)),
        (5, None, False, ("pending", False)),  # input changed after its transcript
        (10, None, False, ("pending", False)),  # same second: the ETag decides (none given)
        (None, 30, False, ("failed", False)),
        (None, 5, False, ("pending", False)),
        (30, 40, False, ("failed", False)),  # the later write wins
        (40, 30, False, ("done", False)),
        (15, None, True, ("pending", False)),  # overwrite: made before the job
        (40, None, True, ("done", False)),  # overwrite: made by this job
        (15, None, False, ("done", True)),  # current, and older than the job: skipped
    ],
)
def test_classify(
    json_at: int | None, error_at: int | None, overwrite: bool, expected: tuple[str, bool]
) -> None:
    source = info("in", 10)
    json = info("o.json", json_at) if json_at is not None else None
    error = info("o.error.json", error_at) if error_at is not None else None
    since = EPOCH + timedelta(seconds=25)  # the job was created at 25
    assert classify(source, json, error, overwrite=overwrite, since=since) == expected


@pytest.mark.parametrize(("recorded", "expected"), [("e-in", "done"), ("e-old", "pending")])
def test_an_output_of_the_same_second_is_current_only_with_the_inputs_etag(
    recorded: str, expected: str
) -> None:
    source = ObjectInfo("in", 1, '"e-in"', EPOCH + timedelta(seconds=10))
    json = info("o.json", 10)
    asked: list[tuple[str, str]] = []

    def records(key: str, etag: str) -> bool:
        asked.append((key, etag))
        return recorded == etag

    assert classify(source, json, None, records=records)[0] == expected
    assert asked == [("o.json", "e-in")]  # one HEAD, only for the tie
    later = info("o.json", 11)
    assert classify(source, later, None, records=records)[0] == "done" and len(asked) == 1


def scan(store: FakeStore, input_uri: str, output_uri: str, **kw: object) -> dict[str, str]:
    planner = Planner(store, page_size=2)  # type: ignore[arg-type]
    items = planner.scan(parse_s3_uri(input_uri), parse_s3_uri(output_uri), **kw)  # type: ignore[arg-type]
    return {i.relative: i.state for i in items}


@pytest.fixture
def store() -> FakeStore:
    s = FakeStore()
    for key in ["p/a.mp3", "p/b.WAV", "p/notes.txt", "p/deep/er/c.flac", "p/.hidden.mp3",
                "p/_hark/x.mp3", "p/folder/", "p/d.mp3", "p/e.ogg"]:  # fmt: skip
        s.put(f"s3://in-b/{key}")
    s.put("s3://out-b/q/a.mp3.json")  # newer than its input: done
    s.put("s3://out-b/q/d.mp3.error.json")  # failed for good
    s.put("s3://in-b/p/e.ogg", b"new")  # changed after...
    s.put("s3://out-b/q/e.ogg.json")  # ...and transcribed again
    s.put("s3://out-b/q/_hark/ns.job/summary.json")
    return s


def test_scan_applies_patterns_and_classifies(store: FakeStore) -> None:
    got = scan(store, "s3://in-b/p/", "s3://out-b/q/")
    assert got == {
        "a.mp3": "done",
        "b.WAV": "pending",  # extensions are matched case-blind
        "d.mp3": "failed",
        "deep/er/c.flac": "pending",
        "e.ogg": "done",
    }
    assert store.list_pages > 4  # listed page by page


def test_scan_include_and_exclude(store: FakeStore) -> None:
    got = scan(store, "s3://in-b/p/", "s3://out-b/q/", include=["*.mp3", "deep/*"], exclude=["d.*"])
    assert got == {"a.mp3": "done", "deep/er/c.flac": "pending"}


def test_scan_prefix_without_slash_and_single_object(store: FakeStore) -> None:
    assert scan(store, "s3://in-b/p/deep", "s3://out-b/q/") == {"er/c.flac": "pending"}
    assert scan(store, "s3://in-b/p/a.mp3", "s3://out-b/q/") == {"a.mp3": "done"}
    assert scan(store, "s3://in-b/p/notes.txt", "s3://out-b/q/") == {"notes.txt": "pending"}


def test_scan_output_keys_stay_under_the_output_prefix(store: FakeStore) -> None:
    planner = Planner(store)  # type: ignore[arg-type]
    items = list(planner.scan(parse_s3_uri("s3://in-b/p/"), parse_s3_uri("s3://out-b/q/")))
    bases = {str(i.output_base) for i in items}
    assert "s3://out-b/q/deep/er/c.flac" in bases
    assert all(b.startswith("s3://out-b/q/") for b in bases)
    assert {str(i.input) for i in items if i.relative == "b.WAV"} == {"s3://in-b/p/b.WAV"}


def test_scan_known_current_counts_as_done(store: FakeStore) -> None:
    got = scan(
        store, "s3://in-b/p/", "s3://out-b/q/", known_current=lambda rel, etag: rel == "b.WAV"
    )
    assert got["b.WAV"] == "done"


def test_scan_tally(store: FakeStore) -> None:
    planner = Planner(store)  # type: ignore[arg-type]
    tally = ScanTally()
    since = store.now + timedelta(seconds=1)
    for item in planner.scan(S3Uri("in-b", "p/"), S3Uri("out-b", "q/"), since=since):
        tally.add(item)
    assert (tally.total, tally.done, tally.skipped, tally.failed, tally.pending) == (5, 2, 2, 1, 2)


def test_scan_refuses_buckets_outside_the_profile() -> None:
    store = FakeStore(allowed_buckets=frozenset({"in-b"}))
    with pytest.raises(BucketNotAllowed):
        scan(store, "s3://in-b/p/", "s3://out-b/q/")


def plan_keys(store: FakeStore, input_uri: str, output_uri: str, **kw: object) -> dict[str, str]:
    """plan_key for every object in the input bucket (and one that does not exist)."""
    planner = Planner(store)  # type: ignore[arg-type]
    found = {}
    for key in [*store.keys("in-b"), "p/gone.mp3", "elsewhere/a.mp3"]:
        item = planner.plan_key(parse_s3_uri(input_uri), parse_s3_uri(output_uri), key, **kw)  # type: ignore[arg-type]
        if item is not None:
            found[item.relative] = item.state
    return found


@pytest.mark.parametrize(
    ("input_uri", "kw"),
    [
        ("s3://in-b/p/", {}),
        ("s3://in-b/p/", {"include": ["*.mp3", "deep/*"], "exclude": ["d.*"]}),
        ("s3://in-b/p/deep", {}),  # a folder named without its slash
        ("s3://in-b/p/a.mp3", {}),  # one object
        ("s3://in-b/p/notes.txt", {}),  # one object, whatever its name
        ("s3://in-b/p/", {"known_current": lambda rel, etag: rel == "b.WAV"}),
        ("s3://in-b/p/", {"overwrite": True, "since": EPOCH}),
    ],
)
def test_a_notified_key_is_planned_as_the_scan_plans_it_without_listing(
    store: FakeStore, input_uri: str, kw: dict[str, object]
) -> None:
    listed = scan(store, input_uri, "s3://out-b/q/", **kw)
    pages = store.list_pages
    assert plan_keys(store, input_uri, "s3://out-b/q/", **kw) == listed
    assert store.list_pages == pages  # HEAD requests only


def test_a_notified_key_the_worker_would_refuse_fails_with_the_reason(store: FakeStore) -> None:
    for key in ["p/x//b.mp3", "p/" + "/".join(["d" * 200] * 5) + "/eeeeeeee.mp3"]:  # S3 takes both
        store.put_bytes(S3Uri("in-b", key), b"audio")
    planner = Planner(store)  # type: ignore[arg-type]
    listed = list(planner.scan(S3Uri("in-b", "p/"), S3Uri("out-b", "q/")))
    problems = {i.input.key: i.problem for i in listed if i.problem is not None}
    assert len(problems) == 2 and all(problems.values())
    for key, problem in problems.items():
        item = planner.plan_key(S3Uri("in-b", "p/"), S3Uri("out-b", "q/"), key)
        assert item is not None and item.state == "failed" and item.problem == problem
