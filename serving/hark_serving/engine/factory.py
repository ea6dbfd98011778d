"""Building the engine's parts from settings: the one place that reads them for it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hark_serving.config import Settings
from hark_serving.engine.embedded import Engine, EngineSettings
from hark_serving.engine.model_source import resolve_model
from hark_serving.engine.pipeline import SegmentingSettings
from hark_serving.engine.sensevoice import SenseVoice
from hark_serving.engine.vad import FsmnDetector, SileroDetector, SpeechDetector, WholeFileDetector
from hark_serving.storage.uris import is_s3

if TYPE_CHECKING:
    from hark_serving.storage.s3 import S3Store


def segmenting(settings: Settings) -> SegmentingSettings:
    return SegmentingSettings(
        merge_seconds=settings.vad_merge_seconds,
        max_segment_seconds=settings.max_segment_seconds,
        max_audio_seconds=settings.max_audio_seconds,
        spill_after_seconds=settings.spill_after_seconds,
        max_split_channels=settings.max_split_channels,
    )


def _store_for(ref: str, settings: Settings) -> S3Store | None:
    """The store a model reference needs: none unless it is in S3 (boto3 costs 0.3 s)."""
    return settings.s3_store() if is_s3(ref) else None


def build_detector(settings: Settings) -> SpeechDetector:
    if settings.vad == "silero":
        return SileroDetector(max_segment_seconds=settings.max_segment_seconds)
    if settings.vad == "fsmn":
        resolved = resolve_model(
            settings.vad_model,
            settings.model_cache,
            store=_store_for(settings.vad_model, settings),
            hub=settings.model_hub,
        )
        return FsmnDetector(resolved.path, max_segment_seconds=settings.max_segment_seconds)
    return WholeFileDetector()


def build_recognizer(settings: Settings) -> SenseVoice:
    resolved = resolve_model(
        settings.model,
        settings.model_cache,
        store=_store_for(settings.model, settings),
        hub=settings.model_hub,
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
