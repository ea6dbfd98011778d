"""The two ends of transcribing one file, around the model call.

`prepare` decodes a file and plans its segments (CPU work, no model);
`assemble` turns the model's raw outputs for those segments into a
`hark.transcript/v1` result. The embedded engine and the Serve workers both
use them; only how segments reach the model differs.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from hark_serving.analytics.call import CallSettings, build_call, role_of
from hark_serving.engine.audio import DecodedAudio, decode_audio
from hark_serving.engine.recognition import DecodeRequest, Recognized, encoder_frames
from hark_serving.engine.vad import PlannedSegment, SpeechDetector, plan_segments, split_at_pauses
from hark_serving.options import TranscribeOptions
from hark_serving.transcript.schema import (
    ModelInfo,
    ResultOptions,
    Segment,
    Source,
    Timing,
    Transcript,
    Word,
)
from hark_serving.transcript.summary import summarize
from hark_serving.transcript.tags import parse_rich_text

# With a call report, no segment spans a pause this long: talk, silence and
# interruptions are read from segment times, so a merged span must not hide them.
CALL_PAUSE_SECONDS = 1.0


@dataclass(frozen=True)
class SegmentingSettings:
    merge_seconds: float = 15.0
    max_segment_seconds: float = 30.0
    # None: the recipe's segments, pauses included; else speech only (engine.vad).
    max_pause_seconds: float | None = None
    max_audio_seconds: float | None = None
    spill_after_seconds: float = 600.0
    spill_dir: Path | None = None
    max_split_channels: int = 8


@dataclass
class SegmentWork:
    """One segment of one channel, with lazy access to its samples."""

    channel: int | None
    plan: PlannedSegment
    audio: np.ndarray = field(repr=False)

    def samples(self) -> np.ndarray:
        return self.plan.samples(self.audio)

    @property
    def frames(self) -> int:
        span_ms = self.plan.span_end_ms - self.plan.span_start_ms
        return encoder_frames(span_ms * 16)


@dataclass
class PreparedFile:
    source: Source
    options: TranscribeOptions
    segments: list[SegmentWork]
    audio: DecodedAudio = field(repr=False)
    decode_s: float = 0.0
    vad_s: float = 0.0

    def request(self) -> DecodeRequest:
        return DecodeRequest(
            self.options.language, self.options.use_itn, self.options.timestamps == "word"
        )

    def close(self) -> None:
        self.audio.close()


def prepare(
    source: str | Path | BinaryIO,
    *,
    uri: str,
    options: TranscribeOptions,
    detector: SpeechDetector,
    settings: SegmentingSettings,
    etag: str | None = None,
    size: int | None = None,
) -> PreparedFile:
    """Decode `source` and cut it into segments. Raises InputError for bad audio."""
    split = options.channels == "split"
    audio = decode_audio(
        source,
        name=uri,
        split_channels=split,
        max_seconds=settings.max_audio_seconds,
        spill_after_seconds=settings.spill_after_seconds,
        spill_dir=settings.spill_dir,
        max_split_channels=settings.max_split_channels,
    )
    try:
        started = time.perf_counter()
        segments: list[SegmentWork] = []
        pause = min(CALL_PAUSE_SECONDS, options.non_talk_min_seconds)
        for index, channel_audio in enumerate(audio.channels):
            regions = detector.detect(channel_audio)
            groups = [regions]
            if split or options.roles is not None:
                groups = split_at_pauses(regions, max(1, int(pause * 1000)))
            for group in groups:
                for plan in plan_segments(
                    group,
                    merge_seconds=settings.merge_seconds,
                    max_segment_seconds=settings.max_segment_seconds,
                    max_pause_seconds=settings.max_pause_seconds,
                ):
                    segments.append(SegmentWork(index if split else None, plan, channel_audio))
        vad_s = time.perf_counter() - started
    except BaseException:
        audio.close()
        raise
    if size is None and isinstance(source, (str, Path)):
        size = Path(source).stat().st_size
    info = audio.info
    return PreparedFile(
        source=Source(
            uri=uri,
            etag=etag,
            bytes=size,
            format=info.format,
            duration=info.duration,
            sample_rate=info.sample_rate,
            channels=info.channels,
        ),
        options=options,
        segments=segments,
        audio=audio,
        decode_s=audio.decode_seconds,
        vad_s=vad_s,
    )


def _power(work: SegmentWork) -> float:
    """Mean square of the segment's speech samples (for loudness in dBFS)."""
    start = work.plan.speech_start_ms * 16
    end = max(start + 1, work.plan.speech_end_ms * 16)
    samples = np.asarray(work.audio[start:end], dtype=np.float64)
    return float(np.mean(samples * samples)) if samples.size else 0.0


def _segment(work: SegmentWork, result: Recognized) -> Segment:
    parsed = parse_rich_text(result.raw)
    offset = work.plan.span_start_ms / 1000
    words = None
    if result.words is not None:
        words = [
            Word(text=w.text, start=round(offset + w.start, 3), end=round(offset + w.end, 3))
            for w in result.words
        ]
    return Segment(
        id=0,
        start=work.plan.speech_start_ms / 1000,
        end=work.plan.speech_end_ms / 1000,
        channel=work.channel,
        language=parsed.language,
        emotion=parsed.emotion,
        events=list(parsed.events),
        text=parsed.text,
        raw=result.raw,
        words=words,
    )


def assemble(
    prepared: PreparedFile,
    results: Sequence[Recognized],
    *,
    model: ModelInfo,
    asr_seconds: float,
) -> Transcript:
    """Build the result for `prepared` from one `Recognized` per segment, in order."""
    if len(results) != len(prepared.segments):
        raise ValueError(f"{len(prepared.segments)} segments but {len(results)} results")
    opts = prepared.options
    with_call = opts.channels == "split" or opts.roles is not None
    pairs = [(_segment(w, r), w) for w, r in zip(prepared.segments, results, strict=True)]
    pairs.sort(key=lambda p: (p[0].start, p[0].channel or 0))
    segments = [seg for seg, _ in pairs]
    powers: dict[int, float] = {}
    for i, (seg, work) in enumerate(pairs):
        seg.id = i
        if with_call:
            seg.role = role_of(seg.channel, opts.roles)
            powers[i] = _power(work)
    summary = summarize(segments)
    spoken = Counter({k: v for k, v in summary.languages.items() if k != "nospeech"})
    language = spoken.most_common(1)[0][0] if spoken else None
    duration = prepared.source.duration
    total = prepared.decode_s + prepared.vad_s + asr_seconds
    call = None
    if with_call:
        channels = range(prepared.source.channels) if opts.channels == "split" else [None]
        roles = {str(c or 0): role_of(c, opts.roles) for c in channels}
        call = build_call(
            segments, duration, roles, powers, CallSettings(opts.non_talk_min_seconds)
        )
    return Transcript(
        source=prepared.source,
        model=model,
        options=ResultOptions(
            language=opts.language,
            use_itn=opts.use_itn,
            timestamps=opts.timestamps,
            channels=opts.channels,
        ),
        language=language,
        text=" ".join(s.text for s in segments if s.text),
        segments=segments,
        summary=summary,
        timing=Timing(
            decode_s=round(prepared.decode_s, 4),
            vad_s=round(prepared.vad_s, 4),
            asr_s=round(asr_seconds, 4),
            rtf=round(total / duration, 4) if duration > 0 else 0.0,
        ),
        call=call,
    )
