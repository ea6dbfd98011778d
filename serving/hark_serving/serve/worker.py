"""The Worker deployment: CPU work around the model, for uploads and S3 items.

A request's file is decoded and cut at pauses (`pipeline.prepare`, on a small
thread pool so one replica overlaps many files), its segments go to the
Transcriber one call each, all at once, so they batch with the segments of
every other request in flight, and the results are assembled into the
transcript. For `/v1/items`, `items.ItemRunner` adds the S3 side: the
skip-if-current check, the download and the whole-object writes.

A Transcriber replica that dies mid-batch is retried on another one; a
transient object-store failure retries the whole item with backoff (items
are idempotent, so a retry is always safe).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import ray
import torch
from ray import serve
from ray.serve import metrics as serve_metrics
from ray.serve.handle import DeploymentHandle

from hark_serving.engine.factory import build_detector, segmenting
from hark_serving.engine.pipeline import PreparedFile, SegmentWork, assemble, prepare
from hark_serving.engine.priority import background_pool
from hark_serving.engine.recognition import Recognized
from hark_serving.errors import HarkError, InternalError, SourceChanged, StorageUnavailable
from hark_serving.retry import RetryPolicy, retry_async
from hark_serving.runs.items import ItemRunner, Started
from hark_serving.runs.itemspec import ItemRequest, ItemResult
from hark_serving.serve.context import (
    configure_replica_logging,
    run_in_context,
    run_owned,
    set_request_id,
)
from hark_serving.serve.errors import Unavailable
from hark_serving.serve.handles import call_replica
from hark_serving.serve.messages import (
    ELSEWHERE,
    BatchStats,
    Failure,
    ItemReply,
    ModelStatus,
    SegmentResult,
    SegmentTask,
    TranscribeReply,
    UploadJob,
)
from hark_serving.serve.metrics import WorkerMetrics
from hark_serving.serve.settings import load_serve_settings
from hark_serving.storage.lease import Holding
from hark_serving.transcript.schema import ModelInfo

log = logging.getLogger(__name__)

T = TypeVar("T")

# A Transcriber replica can vanish mid-batch (scale-down, node loss); its segments
# are sent again, to whichever replica the router picks.
SEGMENT_RETRY = RetryPolicy(base=0.5, cap=5.0, attempts=3)


def _close_started(started: Started | ItemResult) -> None:
    if isinstance(started, Started):
        started.prepared.close()


@serve.deployment(name="Worker")
class Worker:
    def __init__(self, args: dict[str, Any], transcriber: DeploymentHandle[Any]) -> None:
        configure_replica_logging()
        self.settings = load_serve_settings(args)
        # VAD is a small model; one thread each leaves the cores to the Transcriber.
        torch.set_num_threads(1)
        self.transcriber = transcriber
        # Spill files of long audio go where uploads are spooled: the sized volume.
        self.segmenting = replace(segmenting(self.settings), spill_dir=self.settings.upload_dir)
        self.detector = build_detector(self.settings)
        self.runner = ItemRunner(
            self.settings.profiles(),
            self.detector,
            self.segmenting,
            spill_dir=self.settings.upload_dir,
            max_bytes=self.settings.max_item_bytes,
        )
        self.node_id = ray.get_runtime_context().get_node_id()
        self._segments_in_flight = asyncio.Semaphore(self.settings.worker_segments_in_flight)
        self._pool = background_pool(self.settings.worker_threads, "hark-prepare")
        self._model: ModelInfo | None = None
        self.metrics = WorkerMetrics(serve_metrics)  # exported on Ray's metrics port

    async def _run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        return await run_in_context(self._pool, fn, *args, **kw)

    async def _model_info(self) -> ModelInfo:
        if self._model is None:

            async def ask() -> ModelStatus:
                answer: ModelStatus = await self.transcriber.status.remote()
                return answer

            status = await call_replica(
                ask, SEGMENT_RETRY, describe="Transcriber.status", gone="no Transcriber answered"
            )
            if status.info is None:
                raise Unavailable("the Transcriber has no model loaded")
            self._model = status.info
        return self._model

    async def _segment(self, task: SegmentTask) -> SegmentResult:
        async def call() -> SegmentResult:
            result: SegmentResult = await self.transcriber.transcribe.remote(task)
            return result

        return await call_replica(
            call,
            SEGMENT_RETRY,
            describe="a Transcriber call",
            gone="no Transcriber replica finished the segment",
        )

    async def _recognize(
        self, prepared: PreparedFile, since: float
    ) -> tuple[list[Recognized], float, tuple[BatchStats, ...]]:
        request = prepared.request()
        # Enough segments in flight to fill a batch alone; a long file's samples are
        # cut (and held in memory) only as earlier segments come back.
        window = asyncio.Semaphore(self.settings.max_batch_segments)

        async def one(index: int, work: SegmentWork) -> SegmentResult:
            # The replica-wide bound keeps the samples queued at the Transcribers (in
            # Ray's shared-memory object store) within a few batches, however many
            # long files arrive at once.
            async with window, self._segments_in_flight:
                return await self._segment(SegmentTask(work.samples(), request, since, index))

        try:
            results = await asyncio.gather(*(one(i, w) for i, w in enumerate(prepared.segments)))
        except HarkError:
            raise
        except Exception as exc:  # a bug in the Transcriber: report it, keep serving
            log.exception("the Transcriber failed")
            raise InternalError(f"the model call failed: {type(exc).__name__}: {exc}") from exc
        asr_seconds = sum(r.seconds for r in results)
        batches = tuple(r.batch for r in results if r.batch is not None)
        return [r.recognized for r in results], asr_seconds, batches

    async def transcribe(self, job: UploadJob) -> TranscribeReply:
        """An uploaded file → its transcript, or the failure the client caused."""
        reply = await self._transcribe(job)
        if reply.transcript is not None:
            self.metrics.finished("upload", "succeeded", reply.transcript.source.duration)
        elif reply.failure is not None:
            self.metrics.finished("upload", "failed", code=reply.failure.code)
        return reply

    async def _transcribe(self, job: UploadJob) -> TranscribeReply:
        set_request_id(job.request_id)
        since = time.time()
        batches: tuple[BatchStats, ...] = ()
        if job.data is None and not self.can_read(job):
            return TranscribeReply(failure=Failure(ELSEWHERE, "send the upload's bytes"))
        try:
            prepared = await run_owned(self._pool, self._prepare_upload, PreparedFile.close, job)
            self.metrics.prepared("upload", prepared.decode_s, prepared.vad_s)
            try:
                results, asr_seconds, batches = await self._recognize(prepared, since)
                model = await self._model_info()
                transcript = await self._run(
                    assemble, prepared, results, model=model, asr_seconds=asr_seconds
                )
            finally:
                prepared.close()
        except HarkError as exc:
            log.info("%s", exc, extra={"code": exc.code})
            return TranscribeReply(failure=Failure.of(exc), batches=batches)
        except Exception as exc:
            log.exception("%s: transcription failed", job.filename)
            return TranscribeReply(failure=Failure("internal", f"{type(exc).__name__}: {exc}"))
        return TranscribeReply(transcript=transcript, batches=batches)

    def _prepare_upload(self, job: UploadJob) -> PreparedFile:
        # Decoded from a file, as items and `hark transcribe` are: one code path for all.
        if job.data is None:
            # The Ingress's spool file, on this node: decoded where it lies, never copied.
            assert job.path is not None
            return self._prepare_file(job, job.path)
        suffix = Path(job.filename).suffix[:16]
        with tempfile.NamedTemporaryFile(
            prefix="hark-upload-", suffix=suffix, dir=self.settings.upload_dir
        ) as tmp:
            tmp.write(job.data)
            tmp.flush()
            return self._prepare_file(job, tmp.name)

    def _prepare_file(self, job: UploadJob, path: str) -> PreparedFile:
        return prepare(
            path,
            uri=job.filename,
            options=job.options,
            detector=self.detector,
            settings=self.segmenting,
            etag=job.md5 or None,
            size=job.size,
        )

    def can_read(self, job: UploadJob) -> bool:
        """Whether the spool file the job names is on this replica's node."""
        return job.node == self.node_id and job.path is not None and os.path.isfile(job.path)

    async def process_item(self, req: ItemRequest, rid: str = "") -> ItemReply:
        """One S3 object → its outputs; never raises for a bad item (see `ItemResult`)."""
        reply = await self._process_item(req, rid)
        r = reply.result
        code = r.error.code if r.error is not None else None
        self.metrics.finished("item", r.status, r.audio_seconds, code)
        return reply

    async def _process_item(self, req: ItemRequest, rid: str) -> ItemReply:
        set_request_id(rid)
        since = time.time()  # a retry keeps its place in the Transcriber's order
        batches: list[BatchStats] = []
        policy = RetryPolicy(
            base=self.settings.item_backoff_seconds, cap=30.0, attempts=self.settings.item_attempts
        )
        try:
            result = await retry_async(
                lambda: self._item_once(req, batches, since),
                policy,
                # An outage of the store, or the input re-uploaded mid-transcription.
                retry_on=(StorageUnavailable, SourceChanged),
                describe=req.input_uri,
            )
            return ItemReply(result, tuple(batches))
        except HarkError as exc:
            log.info("%s", exc, extra={"job": req.job, "uri": req.input_uri, "code": exc.code})
            return ItemReply(await self._run(self.runner.fail, req, exc), tuple(batches))
        except Exception as exc:
            log.exception("%s: the item failed", req.input_uri)
            error = InternalError(f"{type(exc).__name__}: {exc}", subject=req.input_uri)
            return ItemReply(await self._run(self.runner.fail, req, error), tuple(batches))

    async def _item_once(
        self, req: ItemRequest, batches: list[BatchStats], since: float
    ) -> ItemResult:
        # One flight per output across every Worker replica and every sender.
        holding = await run_owned(self._pool, self.runner.hold, Holding.close, req)
        try:
            return await self._item_held(req, batches, since)
        finally:
            await self._run(holding.close)

    async def _item_held(
        self, req: ItemRequest, batches: list[BatchStats], since: float
    ) -> ItemResult:
        started = await run_owned(self._pool, self.runner.begin, _close_started, req)
        if isinstance(started, ItemResult):
            return started
        assert isinstance(started, Started)
        self.metrics.prepared("item", started.prepared.decode_s, started.prepared.vad_s)
        try:
            results, asr_seconds, stats = await self._recognize(started.prepared, since)
            batches.extend(stats)
            model = await self._model_info()
        except BaseException:
            started.prepared.close()
            raise
        return await self._run(
            self.runner.finish, started, results, model=model, asr_seconds=asr_seconds
        )
