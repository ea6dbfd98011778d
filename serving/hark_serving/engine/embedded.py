"""The embedded engine: many files through one in-process model, batched across files.

Files are fetched (downloaded), decoded and segmented a few ahead, two at
once, on background threads below the model's priority, while the model
works. Their segments join one pool; the pool is cut into batches longest
first under the frame budget, so short segments of one file share a batch
with short segments of another. The model never waits for a fuller pool: a
batch is cut from the files prepared so far, and the run waits for a file
only when nothing is left to transcribe. When the last segment of a file
comes back, the file is assembled and yielded; `run` yields files as they
finish, not in input order.

Waiting for a fuller first batch (the pool used to fill to two batches'
worth first) left a core idle while one file after another was decoded: on
the 645 s benchmark the model's first row started 4.0-4.4 s after launch,
and 1.7-2.0 s now; the run kept both cores 192% busy, against 188-189%.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from hark_serving.engine.packing import Sized, sort_longest_first, take_batch
from hark_serving.engine.pipeline import (
    PreparedFile,
    SegmentingSettings,
    SegmentWork,
    assemble,
    prepare,
)
from hark_serving.engine.priority import background_pool
from hark_serving.engine.recognition import DecodeRequest, Recognized
from hark_serving.engine.vad import SpeechDetector
from hark_serving.errors import HarkError, InternalError
from hark_serving.options import TranscribeOptions
from hark_serving.transcript.schema import ModelInfo, Transcript

log = logging.getLogger(__name__)


class Recognizer(Protocol):
    """A loaded model (torch's `SenseVoice` or ONNX Runtime's `OnnxSenseVoice`)."""

    @property
    def info(self) -> ModelInfo: ...

    @property
    def threads(self) -> int: ...

    def recognize(
        self, waves: Sequence[np.ndarray], requests: Sequence[DecodeRequest]
    ) -> list[Recognized]: ...

    def allow_concurrent_calls(self, lanes: int) -> None: ...


@dataclass(frozen=True)
class AudioJob:
    """One file to transcribe: how to get it locally, and what to call it."""

    uri: str
    open: Callable[[], AbstractContextManager[Path]]
    etag: str | None = None
    size: int | None = None
    tag: Any = None  # the caller's handle, returned with the outcome


@dataclass
class Outcome:
    job: AudioJob
    transcript: Transcript | None = None
    error: HarkError | None = None


@dataclass
class _FileState:
    job: AudioJob
    prepared: PreparedFile
    results: list[Recognized | None]
    remaining: int
    asr_seconds: float = 0.0


@dataclass(frozen=True)
class _Slot:
    state: _FileState
    index: int

    @property
    def work(self) -> SegmentWork:
        return self.state.prepared.segments[self.index]


@dataclass(frozen=True)
class EngineSettings:
    batch_frames: int = 6000
    max_batch_segments: int = 64
    prefetch_files: int = 2
    segmenting: SegmentingSettings = field(default_factory=SegmentingSettings)


class Engine:
    def __init__(
        self,
        recognizer: Recognizer,
        detector: SpeechDetector,
        settings: EngineSettings | None = None,
    ) -> None:
        self.recognizer = recognizer
        self.detector = detector
        self.settings = settings or EngineSettings()

    def prepare(self, job: AudioJob, options: TranscribeOptions) -> PreparedFile:
        with job.open() as path:
            return self._prepare_path(job, path, options)

    def _prepare_path(self, job: AudioJob, path: Path, options: TranscribeOptions) -> PreparedFile:
        return prepare(
            path,
            uri=job.uri,
            options=options,
            detector=self.detector,
            settings=self.settings.segmenting,
            etag=job.etag,
            size=job.size,
        )

    def _fetch_prepared(self, job: AudioJob, options: TranscribeOptions) -> PreparedFile | Outcome:
        """Fetch, decode and segment a file, on the prepare thread, while the model runs.

        The thread runs below the model's priority (`engine.priority`): the model
        splits each layer over its threads and waits for the slowest, so a
        preparing thread of equal priority would stall it. Decoding and the ONNX
        VAD release the GIL for most of their time. On the 645 s benchmark this
        took 28.5-30.8 s down to 27.4-29.9 s of model time against preparing
        between batches on the model's own thread.
        """
        try:
            with job.open() as path:
                return self._prepare_path(job, path, options)
        except HarkError as exc:
            return Outcome(job, error=exc)
        except Exception as exc:  # one bad file must not end the run
            log.exception("%s: preparing failed", job.uri)
            return Outcome(job, error=_internal(job, exc))

    def run(
        self,
        jobs: Iterable[AudioJob],
        options: TranscribeOptions,
        *,
        on_audio: Callable[[float], None] | None = None,
    ) -> Iterator[Outcome]:
        """Transcribe `jobs`, yielding each outcome as its file completes.

        `on_audio(seconds)` reports transcribed speech as batches finish, for
        progress bars on long files.
        """
        s = self.settings
        pending_jobs = iter(jobs)
        exhausted = False
        fetches: deque[tuple[AudioJob, Future[PreparedFile | Outcome]]] = deque()
        pool: list[Sized[_Slot]] = []
        pool_frames = 0
        target = 2 * s.batch_frames  # enough to sort across files, little more in memory

        with background_pool(max(1, s.prefetch_files), "hark-prepare") as executor:

            def refill() -> None:
                nonlocal exhausted
                while not exhausted and len(fetches) < s.prefetch_files:
                    try:
                        job = next(pending_jobs)
                    except StopIteration:
                        exhausted = True
                        return
                    fetches.append((job, executor.submit(self._fetch_prepared, job, options)))

            def collect() -> Iterator[Outcome]:
                """Move prepared files into the pool, up to `target` frames. Waits for a
                file only while the pool is empty: the model never idles for the sake
                of a fuller pool."""
                nonlocal pool_frames
                refill()
                while fetches and pool_frames < target and (not pool or fetches[0][1].done()):
                    job, fetch = fetches.popleft()
                    refill()
                    prepared = fetch.result()
                    if isinstance(prepared, Outcome):
                        yield prepared
                        continue
                    state = _FileState(
                        job, prepared, [None] * len(prepared.segments), len(prepared.segments)
                    )
                    if not prepared.segments:
                        self._model_ready()
                        yield self._finish(state)
                    for i, work in enumerate(prepared.segments):
                        pool.append(Sized(_Slot(state, i), work.frames))
                        pool_frames += work.frames

            try:
                while True:
                    yield from collect()
                    if not pool:
                        if exhausted and not fetches:
                            return
                        continue
                    self._model_ready()
                    yield from collect()  # what was prepared while the model loaded
                    pool = sort_longest_first(pool)
                    batch, pool = take_batch(pool, s.batch_frames, s.max_batch_segments)
                    pool_frames -= sum(b.frames for b in batch)
                    yield from self._run_batch(batch, on_audio)
                    if any(b.item.state.remaining < 0 for b in batch):
                        # Drop what is left of files whose batch failed.
                        pool = [p for p in pool if p.item.state.remaining >= 0]
                        pool_frames = sum(p.frames for p in pool)
            finally:
                for _, fetch in fetches:
                    fetch.cancel()
                for _, fetch in fetches:
                    with contextlib.suppress(Exception):
                        done = fetch.result()
                        if isinstance(done, PreparedFile):
                            done.close()

    def _model_ready(self) -> None:
        """Wait for a model still loading (`engine.pending`); its load's error ends the run."""
        wait = getattr(self.recognizer, "wait", None)
        if wait is not None:
            wait()

    def _run_batch(
        self, batch: list[Sized[_Slot]], on_audio: Callable[[float], None] | None
    ) -> Iterator[Outcome]:
        slots = [b.item for b in batch]
        started = time.perf_counter()
        try:
            results = self.recognizer.recognize(
                [slot.work.samples() for slot in slots],
                [slot.state.prepared.request() for slot in slots],
            )
        except Exception as exc:
            log.exception("a model batch of %d segments failed", len(slots))
            failed = {id(slot.state): slot.state for slot in slots}
            for state in failed.values():
                state.remaining = -1
                state.prepared.close()
                error = exc if isinstance(exc, HarkError) else _internal(state.job, exc)
                yield Outcome(state.job, error=error)
            return
        elapsed = time.perf_counter() - started
        total_frames = sum(b.frames for b in batch) or 1
        speech = 0.0
        for sized, result in zip(batch, results, strict=True):
            slot = sized.item
            state = slot.state
            state.results[slot.index] = result
            state.asr_seconds += elapsed * sized.frames / total_frames
            state.remaining -= 1
            plan = slot.work.plan
            speech += (plan.span_end_ms - plan.span_start_ms) / 1000
            if state.remaining == 0:
                yield self._finish(state)
        if on_audio is not None:
            on_audio(speech)

    def _finish(self, state: _FileState) -> Outcome:
        try:
            transcript = assemble(
                state.prepared,
                [r for r in state.results if r is not None],
                model=self.recognizer.info,
                asr_seconds=state.asr_seconds,
            )
            return Outcome(state.job, transcript=transcript)
        finally:
            state.prepared.close()

    def transcribe(self, job: AudioJob, options: TranscribeOptions) -> Transcript:
        """One file, start to end; raises its error instead of returning it."""
        for outcome in self.run([job], options):
            if outcome.error is not None:
                raise outcome.error
            assert outcome.transcript is not None
            return outcome.transcript
        raise RuntimeError("no outcome")  # unreachable: run yields once per job


def _internal(job: AudioJob, exc: Exception) -> InternalError:
    error = InternalError(f"{type(exc).__name__}: {exc}", subject=job.uri)
    error.__cause__ = exc
    return error
