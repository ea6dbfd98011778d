"""A job from start to finish against an in-memory S3 and worker (no cluster, no model)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from hark_operator.clients.storage import ErrorRecorder
from hark_operator.jobs.dispatcher import Dispatcher, RetryPolicy
from hark_operator.jobs.env import JobEnv
from hark_operator.jobs.lifecycle import JobRunner
from hark_operator.jobs.reporter import Reporter
from hark_operator.resource.models import JobRef, JobSpec, JobStatus
from hark_operator.run import MemoryStatus
from hark_serving.runs.itemspec import ItemRequest, ItemResult
from hark_serving.storage.uris import S3Uri

from .fakes import Events, FakeStore, FakeStores, FakeWorker, transcript

T = TypeVar("T")
REF = JobRef(namespace="ns", name="job", uid="u1")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 30))


def spec(**kw: Any) -> JobSpec:
    base: dict[str, Any] = {
        "input": {"uri": "s3://in-b/calls/"},
        "output": {"uri": "s3://out-b/t/", "formats": ["json", "srt"]},
        "parallelism": 2,
    }
    base.update(kw)
    return JobSpec.model_validate(base)


class Harness:
    def __init__(self, store: FakeStore, worker: FakeWorker | None = None) -> None:
        self.store = store
        self.worker = worker or FakeWorker(store)
        self.stores = FakeStores(store)
        self.events = Events()
        self.memory = MemoryStatus()
        self.deleted = 0

    async def job(self, spec_value: JobSpec | list[JobSpec], **kw: Any) -> JobRunner:
        self.dispatcher = Dispatcher(
            self.worker,
            max_in_flight=4,
            item_timeout=5,
            backoff=RetryPolicy(base=0.01, cap=0.02, jitter=0, attempts=None),
            recorder=ErrorRecorder(self.stores),  # type: ignore[arg-type]
        )
        self.dispatcher.start()
        # The store's clock: what it wrote before a runner started is older than the start.
        env = JobEnv(
            self.dispatcher, self.stores, status_interval=0.05, retry_delay=0.02,  # type: ignore[arg-type]
            wall=lambda: self.store.now + timedelta(milliseconds=500),
        )  # fmt: skip
        box = spec_value if isinstance(spec_value, list) else [spec_value]

        async def delete() -> None:
            self.deleted += 1

        return JobRunner(
            REF, lambda: box[0], Reporter(self.memory, self.events), env, delete=delete, **kw
        )

    async def close(self) -> None:
        await self.dispatcher.close()


def corpus(store: FakeStore) -> None:
    for key in ["a.mp3", "b.wav", "deep/c.flac", "deep/er/d.ogg"]:
        store.put(f"s3://in-b/calls/{key}")
    store.put("s3://in-b/calls/broken.mp3", b"broken")
    store.put("s3://in-b/calls/readme.txt")


def test_a_batch_job_transcribes_everything_and_succeeds() -> None:
    async def main() -> None:
        store = FakeStore()
        corpus(store)
        h = Harness(store)
        runner = await h.job(spec())
        status = await runner.run()
        await h.close()
        assert status.phase == "Succeeded"
        c = status.counts
        assert (c.total, c.succeeded, c.failed, c.skipped, c.pending, c.in_flight) == (
            5,
            4,
            1,
            0,
            0,
            0,
        )
        assert status.progress == "4/5"
        keys = store.keys("out-b")
        for name in ["a.mp3", "b.wav", "deep/c.flac", "deep/er/d.ogg"]:
            assert f"t/{name}.json" in keys and f"t/{name}.srt" in keys
        assert "t/broken.mp3.error.json" in keys and "t/readme.txt.json" not in keys
        conditions = {c.type: c for c in status.conditions}
        assert conditions["Complete"].status == "True"
        assert conditions["Progressing"].status == "False"
        assert [f.key for f in status.recent_failures] == ["s3://in-b/calls/broken.mp3"]
        assert status.summary_uri == "s3://out-b/t/_hark/ns.job/summary.json"
        summary = json.loads(store.get_bytes(S3Uri("out-b", "t/_hark/ns.job/summary.json")))
        assert summary["counts"]["succeeded"] == 4 and summary["files_summarized"] == 4
        assert summary["languages"] == {"en": 4.0} and summary["events"] == {"Speech": 4}
        assert summary["audio_seconds"] == 8.0 and status.audio_seconds == 8.0
        assert [f["code"] for f in summary["failures"]] == ["corrupt_audio"]
        assert {"Started", "ItemFailed", "Completed"} <= set(h.events.reasons())
        assert h.worker.overlaps == 0

    run(main())


def test_a_second_run_finds_everything_current() -> None:
    async def main() -> None:
        store = FakeStore()
        corpus(store)
        h = Harness(store)
        await (await h.job(spec())).run()
        await h.close()
        calls = len(h.worker.calls)
        again = Harness(store, h.worker)
        runner = await again.job(spec(), created=store.now)
        status = await runner.run()
        await again.close()
        assert len(h.worker.calls) == calls  # nothing sent again
        c = status.counts
        assert (c.total, c.succeeded, c.skipped, c.failed) == (5, 4, 4, 1)
        summary = json.loads(store.get_bytes(S3Uri("out-b", "t/_hark/ns.job/summary.json")))
        assert summary["files_summarized"] == 4  # rebuilt from the transcripts in S3
        assert summary["failures"][0]["key"] == "s3://in-b/calls/broken.mp3"

    run(main())


def test_a_watch_job_picks_up_new_files() -> None:
    async def main() -> None:
        store = FakeStore()
        store.put("s3://in-b/calls/a.mp3")
        h = Harness(store)
        runner = await h.job(spec(mode="Watch", pollIntervalSeconds=1))
        task = asyncio.create_task(runner.run())
        while "t/a.mp3.json" not in store.keys("out-b"):
            await asyncio.sleep(0.02)
        assert runner.phase == "Watching"
        store.put("s3://in-b/calls/late.mp3")
        while "t/late.mp3.json" not in store.keys("out-b"):
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.2)  # the next scan counts it
        assert runner.observation().counts.succeeded == 2
        assert h.memory.status.phase == "Watching"
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await h.close()

    run(main())


def test_suspend_pauses_and_resume_continues() -> None:
    async def main() -> None:
        store = FakeStore()
        corpus(store)
        h = Harness(store)
        box = [spec(suspend=True)]
        runner = await h.job(box)
        task = asyncio.create_task(runner.run())
        await asyncio.sleep(0.3)
        assert h.worker.calls == [] and h.memory.status.phase == "Suspended"
        cond = {c.type: c for c in h.memory.status.conditions}
        assert cond["Suspended"].status == "True"
        box[0] = spec(suspend=False)
        runner.wake()
        status = await task
        await h.close()
        assert status.phase == "Succeeded" and status.counts.succeeded == 4
        assert {"Suspended", "Resumed"} <= set(h.events.reasons())

    run(main())


def test_ttl_deletes_the_finished_job_object() -> None:
    async def main() -> None:
        store = FakeStore()
        store.put("s3://in-b/calls/a.mp3")
        h = Harness(store)
        await (await h.job(spec(ttlSecondsAfterFinished=0))).run()
        assert h.deleted == 1
        # After a restart, a finished job is not run again; only its TTL is kept.
        finished = JobStatus.model_validate(h.memory.status.to_patch())
        runner = await h.job(spec(ttlSecondsAfterFinished=0), status=finished)
        calls = len(h.worker.calls)
        await runner.run()
        await h.close()
        assert h.deleted == 2 and len(h.worker.calls) == calls

    run(main())


def test_storage_outages_are_waited_out() -> None:
    async def main() -> None:
        store = FakeStore()
        corpus(store)
        store.unavailable = 3
        h = Harness(store)
        status = await (await h.job(spec())).run()
        await h.close()
        assert status.phase == "Succeeded" and status.counts.succeeded == 4
        assert "StorageUnavailable" in h.events.reasons()

    run(main())


def test_a_job_that_cannot_run_fails_with_the_reason() -> None:
    async def main() -> None:
        store = FakeStore(allowed_buckets=frozenset({"in-b"}))
        store.objects.clear()
        h = Harness(store)
        status = await (await h.job(spec())).run()
        await h.close()
        assert status.phase == "Failed"
        failed = {c.type: c for c in status.conditions}["Failed"]
        assert failed.reason == "BucketNotAllowed" and "out-b" in failed.message

        h2 = Harness(FakeStore())
        status = await (await h2.job(spec(storage={"profile": "missing"}))).run()
        await h2.close()
        assert status.phase == "Failed" and "missing" in status.conditions[-1].message

    run(main())


def test_items_that_keep_failing_get_an_error_file_from_the_operator() -> None:
    async def main() -> None:
        store = FakeStore()
        store.put("s3://in-b/calls/a.mp3")
        h = Harness(store)
        store.put("s3://in-b/calls/b.mp3")
        h.worker.crashes["s3://in-b/calls/a.mp3"] = 100
        status = await (await h.job(spec(maxAttempts=2))).run()
        await h.close()
        assert status.phase == "Succeeded" and status.counts.failed == 1
        doc = json.loads(store.get_bytes(S3Uri("out-b", "t/a.mp3.error.json")))
        assert doc["code"] == "internal" and doc["attempts"] == 2
        # Two tries of a.mp3, one of b.mp3; the next scan sees the error file: no more tries.
        assert len(h.worker.calls) == 3

    run(main())


def test_a_restarted_job_carries_on_without_repeating_work() -> None:
    async def main() -> None:
        store = FakeStore()
        for i in range(12):
            store.put(f"s3://in-b/calls/{i:02d}.mp3")
        worker = FakeWorker(store, delay=0.02)
        h = Harness(store, worker)
        runner = await h.job(spec(parallelism=2))
        task = asyncio.create_task(runner.run())
        while len([k for k in store.keys("out-b") if k.endswith(".json")]) < 4:
            await asyncio.sleep(0.01)
        task.cancel()  # the operator goes away mid-job
        await asyncio.gather(task, return_exceptions=True)
        await h.close()
        again = Harness(store, worker)
        status = await (await again.job(spec(parallelism=2))).run()
        await again.close()
        assert status.phase == "Succeeded" and status.counts.succeeded == 12
        json_puts = {k: n for k, n in store.puts.items() if k.endswith(".mp3.json")}
        assert len(json_puts) == 12 and set(json_puts.values()) == {1}

    run(main())


def test_a_processor_down_mid_job_leaves_no_error_record_and_the_job_completes() -> None:
    async def main() -> None:
        store = FakeStore()
        corpus(store)
        h = Harness(store)
        h.worker.down = 12  # more failed tries than files x maxAttempts
        status = await (await h.job(spec(maxAttempts=1))).run()
        await h.close()
        assert status.phase == "Succeeded", status
        assert status.counts.succeeded == 4 and status.counts.failed == 1  # broken.mp3 only
        errors = [k for k in store.keys("out-b") if k.endswith(".error.json")]
        assert errors == ["t/broken.mp3.error.json"]
        assert "ProcessorUnreachable" in h.events.reasons()
        assert "ProcessorAvailable" in h.events.reasons()
        cond = {c.type: c for c in status.conditions}
        assert cond["ProcessorAvailable"].status == "True"

    run(main())


def test_a_batch_job_in_which_every_file_failed_is_failed() -> None:
    async def main() -> None:
        store = FakeStore()
        for i in range(3):
            store.put(f"s3://in-b/calls/{i}.mp3", b"broken")
        h = Harness(store)
        status = await (await h.job(spec())).run()
        await h.close()
        assert status.phase == "Failed" and status.counts.failed == 3
        failed = {c.type: c for c in status.conditions}["Failed"]
        assert failed.reason == "AllFilesFailed"

    run(main())


def test_a_failure_budget_fails_the_job_once_exceeded() -> None:
    async def main() -> None:
        store = FakeStore()
        corpus(store)
        store.put("s3://in-b/calls/broken2.mp3", b"broken")
        h = Harness(store)
        within = await (await h.job(spec(maxFailedFiles=2))).run()
        await h.close()
        assert within.phase == "Succeeded" and within.counts.failed == 2

        store2 = FakeStore()
        corpus(store2)
        store2.put("s3://in-b/calls/broken2.mp3", b"broken")
        h2 = Harness(store2)
        over = await (await h2.job(spec(maxFailedFiles=1))).run()
        await h2.close()
        assert over.phase == "Failed"
        failed = {c.type: c for c in over.conditions}["Failed"]
        assert failed.reason == "FailureBudgetExceeded" and "maxFailedFiles=1" in failed.message

    run(main())


def test_an_error_record_that_cannot_be_written_stops_redispatch_and_says_so() -> None:
    async def main() -> None:
        store = FakeStore(refuse_suffix=".error.json")
        corpus(store)
        h = Harness(store)
        status = await (await h.job(spec())).run()
        await h.close()
        assert status.phase == "Succeeded", status
        assert status.counts.failed == 1 and status.counts.succeeded == 4
        broken = [r for r in h.worker.calls if r.input_uri.endswith("broken.mp3")]
        assert len(broken) == 1  # tried once, never again
        cond = {c.type: c for c in status.conditions}
        assert cond["ErrorRecordsWritten"].status == "False"
        assert status.recent_failures[-1].reason == "error_record_not_written"

    run(main())


def test_an_access_error_during_a_watch_scan_is_a_condition_and_a_retry() -> None:
    async def main() -> None:
        store = FakeStore()
        corpus(store)
        store.denied = 3
        h = Harness(store)
        runner = await h.job(spec(mode="Watch", pollIntervalSeconds=1))
        task = asyncio.create_task(runner.run())
        while "AccessDenied" not in h.events.reasons():
            await asyncio.sleep(0.01)
        assert runner.phase == "Watching"
        while not any(k.endswith("d.ogg.json") for k in store.keys("out-b")):
            await asyncio.sleep(0.01)
        assert runner.phase == "Watching" and runner.blocked is None
        assert "Recovered" in h.events.reasons()
        assert h.stores.forgotten >= 1  # the profile's Secret is read again after a refusal
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await h.close()

    run(main())


def test_keys_the_worker_refuses_are_counted_as_failed_with_the_reason() -> None:
    """An AWS-like store takes `a//b.wav` and `./b.wav`; the worker never would."""
    from hark_serving.storage.uris import S3Uri as Uri

    async def main() -> None:
        store = FakeStore()
        good = ["a b.wav", "ünï/語音.wav", "a+b.wav"]
        for key in good:
            store.put_bytes(Uri("in-b", f"calls/{key}"), b"audio")
        # The last input key is 1021 bytes (allowed), its error record's would be 1026.
        bad = ["x//b.wav", "./c.wav", "/".join(["d" * 200] * 5) + "/eeeeee.wav"]
        for key in bad:
            store.put_bytes(Uri("in-b", f"calls/{key}"), b"audio")
        h = Harness(store)
        status = await (await h.job(spec())).run()
        await h.close()
        assert status.counts.total == 6 and status.counts.succeeded == 3
        assert status.counts.failed == 3 and status.counts.pending == 0
        assert status.phase == "Succeeded"
        assert {r.input_uri for r in h.worker.calls} == {f"s3://in-b/calls/{k}" for k in good}
        reasons = {f.key.rsplit("/", 1)[-1][:8]: f for f in status.recent_failures}
        assert all(f.reason == "invalid_uri" for f in status.recent_failures)
        assert "empty path segment" in reasons["b.wav"].message
        assert "'.' or '..'" in reasons["c.wav"].message
        assert "output key" in reasons["eeeeee.w"].message and "1024" in reasons["eeeeee.w"].message
        # The keys are kept as they are; a second scan reports them again, once each.
        assert len(status.recent_failures) == 3

    run(main())


def test_after_a_restart_a_new_upload_does_not_wait_for_the_summary_of_the_old_ones() -> None:
    async def main() -> None:
        store = FakeStore()
        old = 1500
        for i in range(old):
            store.put(f"s3://in-b/calls/{i:05d}.mp3")
            store.put(f"s3://out-b/t/{i:05d}.mp3.json", json.dumps(transcript()).encode())
        store.put("s3://in-b/calls/zz-new.mp3")  # last in key order
        store.read_delay = 0.002  # reading 1500 transcripts takes seconds
        seen: list[int] = []
        worker = FakeWorker(store)
        original = worker.process

        async def process(req: ItemRequest) -> ItemResult:
            seen.append(store.gets)
            return await original(req)

        worker.process = process  # type: ignore[method-assign]
        h = Harness(store, worker)
        status = await (await h.job(spec())).run()
        await h.close()
        assert status.phase == "Succeeded" and status.counts.total == old + 1
        assert status.counts.succeeded == old + 1 and status.counts.failed == 0
        # Dispatched long before the summary had read the history...
        assert seen and seen[0] < old // 2, seen
        # ...which the summary still covers in the end.
        assert store.gets >= old

    run(main())


def test_a_second_job_on_the_same_output_prefix_waits_and_says_why() -> None:
    async def main() -> None:
        store = FakeStore()
        corpus(store)
        h = Harness(store)
        first = await h.job(spec())
        env = first.env
        events = Events()
        second = JobRunner(
            JobRef(namespace="ns", name="other", uid="u2"),
            lambda: spec(input={"uri": "s3://in-b/calls/deep/"}, output={"uri": "s3://out-b/t/"}),
            Reporter(MemoryStatus(), events),
            env,
        )
        env.claims.claim(first.key, spec().output_prefix)  # the first job is running
        task = asyncio.create_task(second.run())
        while "OutputConflict" not in events.reasons():
            await asyncio.sleep(0.01)
        assert second.blocked is not None and "ns/job" in second.blocked[1]
        assert h.worker.calls == []  # nothing of the second job was dispatched
        status = await first.run()  # runs to the end, then frees the prefix
        assert status.phase == "Succeeded"
        other = await asyncio.wait_for(task, 10)
        await h.close()
        assert other.phase == "Succeeded" and "Recovered" in events.reasons()
        cond = {c.type: c for c in other.conditions}
        assert cond["Progressing"].reason == "Completed"

    run(main())
