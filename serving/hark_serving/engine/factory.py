"""Building the engine's parts from settings: the one place that reads them for it."""

from __future__ import annotations

from hark_serving.config import Settings
from hark_serving.engine.embedded import Engine, EngineSettings
from hark_serving.engine.model_source import resolve_model
from hark_serving.engine.pipeline import SegmentingSettings
from hark_serving.engine.sensevoice import SenseVoice
from hark_serving.engine.vad import FsmnDetector, SileroDetector, SpeechDetector, WholeFileDetector


def segmenting(settings: Settings) -> SegmentingSettings:
    return SegmentingSettings(
        merge_seconds=settings.vad_merge_seconds,
        max_segment_seconds=settings.max_segment_seconds,
        max_audio_seconds=settings.max_audio_seconds,
        spill_after_seconds=settings.spill_after_seconds,
        max_split_channels=settings.max_split_channels,
    )


def build_detector(settings: Settings) -> SpeechDetector:
    if settings.vad == "silero":
        return SileroDetector(max_segment_seconds=settings.max_segment_seconds)
    if settings.vad == "fsmn":
        resolved = resolve_model(
            settings.vad_model,
            settings.model_cache,
            store=settings.s3_store(),
            hub=settings.model_hub,
        )
        return FsmnDetector(resolved.path, max_segment_seconds=settings.max_segment_seconds)
    return WholeFileDetector()


def build_recognizer(settings: Settings) -> SenseVoice:
    resolved = resolve_model(
        settings.model, settings.model_cache, store=settings.s3_store(), hub=settings.model_hub
    )
    return SenseVoice(
        resolved.path,
        source=resolved.source,
        device=settings.device,
        threads=settings.threads,
        precision=settings.precision,
        cache=settings.model_cache,
        weights_sha256=resolved.weights_sha256,
    )


def build_engine(settings: Settings) -> Engine:
    return Engine(
        build_recognizer(settings),
        build_detector(settings),
        EngineSettings(
            batch_frames=settings.batch_frames,
            max_batch_segments=settings.max_batch_segments,
            segmenting=segmenting(settings),
        ),
    )
