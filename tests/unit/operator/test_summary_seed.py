"""The job summary after a restart: transcripts written before the runner started are read
from S3 once the first scan is complete; the ones it writes come from its outcomes; none
is counted twice."""

from __future__ import annotations

import json
from datetime import timedelta

from hark_operator.jobs.planner import Planner
from hark_operator.jobs.summary_store import earlier
from hark_serving.storage.uris import S3Uri

from .fakes import EPOCH, FakeStore
from .test_lifecycle import Harness, run, spec


def test_a_restarted_job_counts_old_and_new_transcripts_once_each() -> None:
    async def main() -> None:
        store = FakeStore()
        for key in ["a.mp3", "b.wav", "c.flac", "d.ogg"]:
            store.put(f"s3://in-b/calls/{key}")
        first = Harness(store)
        await (await first.job(spec())).run()
        await first.close()
        for key in ["e.mp3", "f.wav"]:  # arrived while no operator ran
            store.put(f"s3://in-b/calls/{key}")
        again = Harness(store, first.worker)
        status = await (await again.job(spec())).run()
        await again.close()
        assert status.phase == "Succeeded" and status.counts.succeeded == 6
        assert len(first.worker.calls) == 6  # the first four were not sent again
        summary = json.loads(store.get_bytes(S3Uri("out-b", "t/_hark/ns.job/summary.json")))
        assert summary["files_summarized"] == 6
        assert summary["audio_seconds"] == 12.0

    run(main())


def test_the_seed_takes_outputs_written_before_the_runner_started() -> None:
    store = FakeStore()
    store.put("s3://in-b/p/old.mp3")
    store.put("s3://out-b/q/old.mp3.json")
    started = store.now + timedelta(milliseconds=500)
    store.put("s3://in-b/p/new.mp3")
    store.put("s3://out-b/q/new.mp3.json")  # the runner's own
    store.put("s3://in-b/p/broken.mp3")
    store.put("s3://out-b/q/broken.mp3.error.json")
    store.put("s3://in-b/p/todo.mp3")
    items = {
        i.relative: i
        for i in Planner(store).scan(S3Uri("in-b", "p/"), S3Uri("out-b", "q/"))  # type: ignore[arg-type]
    }
    assert items["old.mp3"].written == EPOCH + timedelta(seconds=2)
    assert items["broken.mp3"].written == store.now - timedelta(seconds=1)
    assert items["todo.mp3"].written is None
    taken = {rel for rel, item in items.items() if earlier(item, started)}
    assert taken == {"old.mp3", "todo.mp3"}  # a pending one has nothing to read anyway
    assert all(earlier(item, None) for item in items.values())
