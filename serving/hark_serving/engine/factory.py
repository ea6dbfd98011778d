"""Building the engine's parts from settings: the one place that reads them for it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from hark_serving.config import Settings
from hark_serving.engine.cpu import cpu_computes_int8, default_threads
from hark_serving.engine.embedded import Engine, EngineSettings, Recognizer
from hark_serving.engine.model_source import ResolvedModel, resolve_model
from hark_serving.engine.pending import PendingRecognizer
from hark_serving.engine.pipeline import SegmentingSettings
from hark_serving.engine.runtime import choose_runtime
from hark_serving.engine.vad import FsmnDetector, SileroDetector, SpeechDetector, WholeFileDetector
from hark_serving.errors import ModelError
from hark_serving.storage.uris import is_s3

if TYPE_CHECKING:
    from hark_serving.engine.onnx_model import OnnxSenseVoice
    from hark_serving.engine.sensevoice import SenseVoice
    from hark_serving.storage.s3 import S3Store

log = logging.getLogger(__name__)


# Regions further apart than this are separate segments under `vad_segments: speech`:
# on the 645 s benchmark, 0.5 s leaves 485 s of model input for 477 s of speech
# (1.0 s: 532 s; the recipe: 642 s), and a segment still holds a sentence or more.
SPEECH_PAUSE_SECONDS = 0.5


def segmenting_mode(settings: Settings) -> str:
    """`speech` or `recipe`: float32 is the precision asked for to match funasr exactly."""
    if settings.vad_segments != "auto":
        return settings.vad_segments
    return "recipe" if settings.precision == "float32" else "speech"


def segmenting(settings: Settings) -> SegmentingSettings:
    speech = segmenting_mode(settings) == "speech"
    return SegmentingSettings(
        merge_seconds=settings.vad_merge_seconds,
        max_pause_seconds=SPEECH_PAUSE_SECONDS if speech else None,
        max_segment_seconds=settings.max_segment_seconds,
        max_audio_seconds=settings.max_audio_seconds,
        spill_after_seconds=settings.spill_after_seconds,
        max_split_channels=settings.max_split_channels,
    )


def model_store(ref: str, settings: Settings) -> S3Store | None:
    """The store a model reference needs: none unless it is in S3 (boto3 costs 0.3 s)."""
    return settings.s3_store() if is_s3(ref) else None


def build_detector(settings: Settings) -> SpeechDetector:
    if settings.vad == "silero":
        return SileroDetector(max_segment_seconds=settings.max_segment_seconds)
    if settings.vad == "fsmn":
        resolved = resolve_model(
            settings.vad_model,
            settings.model_cache,
            store=model_store(settings.vad_model, settings),
            hub=settings.model_hub,
        )
        return FsmnDetector(resolved.path, max_segment_seconds=settings.max_segment_seconds)
    return WholeFileDetector()


def runtime_for(settings: Settings) -> str:
    """`onnx` or `torch`: what runs the model under these settings, on this machine."""
    from hark_serving.engine.devices import nvidia_present

    return choose_runtime(
        settings.runtime,
        settings.precision,
        settings.device,
        gpu_present=nvidia_present(),
        cpu_int8=cpu_computes_int8(),
    )


def build_recognizer(settings: Settings) -> Recognizer:
    """The model, loaded: ONNX Runtime's int8 export, or torch (see engine.runtime)."""
    resolved = resolve_model(
        settings.model,
        settings.model_cache,
        store=model_store(settings.model, settings),
        hub=settings.model_hub,
    )
    if runtime_for(settings) == "onnx":
        try:
            return build_onnx(settings, resolved)
        except ModelError as exc:
            if settings.runtime != "auto":
                raise
            # Chosen for speed, not asked for: torch serves instead (its own int8, checked).
            log.warning("%s; runtime auto runs the model in torch instead", exc)
    return build_torch(settings, resolved)


def build_onnx(settings: Settings, resolved: ResolvedModel) -> OnnxSenseVoice:
    from hark_serving.engine.onnx_export import build
    from hark_serving.engine.onnx_model import OnnxSenseVoice

    threads = settings.threads or default_threads()
    exported = build(resolved.path, settings.model_cache, threads, resolved.weights_sha256)
    return OnnxSenseVoice(exported.path, source=resolved.source, threads=threads)


def build_torch(settings: Settings, resolved: ResolvedModel) -> SenseVoice:
    from hark_serving.engine.sensevoice import SenseVoice

    return SenseVoice(
        resolved.path,
        source=resolved.source,
        device=settings.device,
        threads=settings.threads,
        precision=settings.precision,
        cache=settings.model_cache,
        weights_sha256=resolved.weights_sha256,
    )


def build_engine(settings: Settings, *, clock: Callable[[], float] | None = None) -> Engine:
    """The engine; with `clock`, the model loads on a thread while the run starts
    (`engine.pending`, which records the `clock` time at which it was ready)."""
    recognizer: Recognizer = (
        build_recognizer(settings)
        if clock is None
        else PendingRecognizer(lambda: build_recognizer(settings), clock=clock)
    )
    return Engine(
        recognizer,
        build_detector(settings),
        EngineSettings(
            batch_frames=settings.batch_frames,
            max_batch_segments=settings.max_batch_segments,
            segmenting=segmenting(settings),
        ),
    )
