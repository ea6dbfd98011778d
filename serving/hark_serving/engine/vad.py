"""Finding speech, and cutting it into the segments the model transcribes.

Detectors turn 16 kHz samples into speech regions in milliseconds:
`silero` (default; its weights ship in the `silero-vad` package, so it works
offline), `fsmn` (funasr's FSMN VAD, from the hub or a local directory) and
`none` (the whole file is speech).

`plan_segments` then groups regions the way funasr's published SenseVoice
recipe does (`merge_vad` with `merge_length_s`), so each segment the model sees
is the same audio that recipe would give it, with two corrections: spans that
hold no speech at all are not transcribed, and a segment reports the times of
the speech inside it rather than of the span around it. Regions longer than
`max_segment_seconds` are split first.

The recipe's spans tile the file: every pause between regions is transcribed
with the speech around it (642 s of model input for 477 s of speech on the
645 s benchmark). With `max_pause_seconds`, regions further apart than that are
planned apart and each segment is cut to its speech (485 s on the same
audio): the faster precisions use it, float32 keeps the recipe (see
`segmenting_mode`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16000
SAMPLES_PER_MS = SAMPLE_RATE // 1000


@dataclass(frozen=True)
class Region:
    """[start_ms, end_ms) of detected speech."""

    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class PlannedSegment:
    """What the model transcribes (`span_*`) and where its speech lies (`speech_*`)."""

    span_start_ms: int
    span_end_ms: int
    speech_start_ms: int
    speech_end_ms: int

    def samples(self, audio: np.ndarray) -> np.ndarray:
        """The model input, sliced exactly as funasr slices a VAD segment."""
        begin = self.span_start_ms * SAMPLES_PER_MS
        end = min(self.span_end_ms * SAMPLES_PER_MS, len(audio))
        return np.ascontiguousarray(audio[begin:end], dtype=np.float32)


class SpeechDetector(Protocol):
    name: str

    def detect(self, samples: np.ndarray) -> list[Region]: ...


@dataclass(frozen=True)
class SileroSettings:
    threshold: float = 0.5
    min_speech_ms: int = 250
    min_silence_ms: int = 100
    speech_pad_ms: int = 30


class SileroDetector:
    """Silero VAD, run a block of frames per ONNX call (the package's sequence model).

    Silero's streaming model takes one 32 ms frame per call, with its LSTM state
    carried in a Python loop: about 60 audio seconds per second here, a fifth of
    the int8 model's pace, so it would starve the model. The `silero-vad`
    package also ships the same network exported to run up to 512 frames
    (16 s) per ONNX Runtime call, with the same per-frame probabilities and so
    the same regions, at about 280 audio seconds per second, and ONNX Runtime
    releases the GIL while it computes, so detectors on several threads run at
    once. One session serves every thread: each call keeps its own state. It runs
    without importing torch (`hark_serving.engine.silero`).
    """

    name = "silero"

    def __init__(self, settings: SileroSettings | None = None, max_segment_seconds: float = 30.0):
        from hark_serving.engine.silero import SequenceModel

        self.settings = settings or SileroSettings()
        self.max_segment_seconds = max_segment_seconds
        self._model = SequenceModel()

    def detect(self, samples: np.ndarray) -> list[Region]:
        from hark_serving.engine.silero import timestamps_function

        if len(samples) == 0:
            return []
        s = self.settings
        samples = np.asarray(samples, dtype=np.float32)
        stamps = timestamps_function()(
            self._model.probabilities(samples),
            sampling_rate=SAMPLE_RATE,
            threshold=s.threshold,
            min_speech_duration_ms=s.min_speech_ms,
            min_silence_duration_ms=s.min_silence_ms,
            speech_pad_ms=s.speech_pad_ms,
            # Silero cuts over-long speech at its longest inner pause, which
            # beats a hard cut; `plan_segments` still enforces the limit.
            max_speech_duration_s=self.max_segment_seconds,
            audio_length_samples=len(samples),
        )
        # Same sample→ms rounding as funasr's silero adapter.
        return [
            Region(int(t["start"] * 1000 / SAMPLE_RATE), int(t["end"] * 1000 / SAMPLE_RATE))
            for t in stamps
        ]


class FsmnDetector:
    """funasr's FSMN VAD, loaded from a resolved model directory."""

    name = "fsmn"

    def __init__(self, model_dir: Path, device: str = "cpu", max_segment_seconds: float = 30.0):
        from funasr import AutoModel

        self._model = AutoModel(
            model=str(model_dir),
            device=device,
            disable_update=True,
            disable_pbar=True,
            disable_log=True,
            max_single_segment_time=int(max_segment_seconds * 1000),
        )
        self._lock = threading.Lock()

    def detect(self, samples: np.ndarray) -> list[Region]:
        if len(samples) == 0:
            return []
        with self._lock:  # the FSMN model keeps streaming caches between calls
            result = self._model.generate(input=np.asarray(samples, dtype=np.float32))
        value = result[0].get("value", []) if result else []
        return [Region(int(a), int(b)) for a, b in value if b > a >= 0]


class WholeFileDetector:
    """No VAD: the whole file is one region (split at the segment limit later)."""

    name = "none"

    def detect(self, samples: np.ndarray) -> list[Region]:
        length_ms = int(len(samples) * 1000 / SAMPLE_RATE)
        return [Region(0, length_ms)] if length_ms > 0 else []


def split_long(regions: Sequence[Region], max_ms: int) -> list[Region]:
    """Cut regions longer than `max_ms` into `max_ms` pieces (funasr's hard split)."""
    out: list[Region] = []
    for r in regions:
        start = r.start_ms
        while r.end_ms - start > max_ms:
            out.append(Region(start, start + max_ms))
            start += max_ms
        out.append(Region(start, r.end_ms))
    return out


def merge_spans(regions: Sequence[Region], merge_ms: int) -> list[tuple[int, int]]:
    """funasr's `merge_vad`: spans between region boundaries, grown up to `merge_ms`."""
    if len(regions) <= 1:
        return [(r.start_ms, r.end_ms) for r in regions]
    steps = sorted({r.start_ms for r in regions} | {r.end_ms for r in regions})
    spans: list[tuple[int, int]] = []
    begin = 0
    for i in range(len(steps) - 1):
        if steps[i + 1] - begin < merge_ms:
            continue
        if steps[i] - begin > 0:
            spans.append((begin, steps[i]))
        begin = steps[i]
    spans.append((begin, steps[-1]))
    return spans


def split_at_pauses(regions: Sequence[Region], pause_ms: int) -> list[list[Region]]:
    """Regions grouped where the pause between neighbours is shorter than `pause_ms`."""
    groups: list[list[Region]] = []
    for region in sorted(regions, key=lambda r: r.start_ms):
        if groups and region.start_ms - groups[-1][-1].end_ms < pause_ms:
            groups[-1].append(region)
        else:
            groups.append([region])
    return groups


def plan_segments(
    regions: Sequence[Region],
    *,
    merge_seconds: float,
    max_segment_seconds: float,
    max_pause_seconds: float | None = None,
) -> list[PlannedSegment]:
    """The segments to transcribe, in time order.

    Without `max_pause_seconds`: the recipe's merging. With it: regions apart by
    more than that are never in one segment, and each segment spans only from
    its first speech to its last.
    """
    if max_pause_seconds is None:
        return _recipe_segments(regions, merge_seconds, max_segment_seconds)
    planned = []
    for group in split_at_pauses(regions, max(1, int(max_pause_seconds * 1000))):
        for p in _recipe_segments(group, merge_seconds, max_segment_seconds):
            start, end = p.speech_start_ms, p.speech_end_ms
            planned.append(PlannedSegment(start, end, start, end))
    return planned


def _recipe_segments(
    regions: Sequence[Region], merge_seconds: float, max_segment_seconds: float
) -> list[PlannedSegment]:
    max_ms = int(max_segment_seconds * 1000)
    pieces = split_long([r for r in regions if r.end_ms > r.start_ms], max_ms)
    if merge_seconds <= 0:
        return [PlannedSegment(r.start_ms, r.end_ms, r.start_ms, r.end_ms) for r in pieces]
    planned = []
    for start, end in merge_spans(pieces, int(merge_seconds * 1000)):
        inside = [r for r in pieces if r.end_ms > start and r.start_ms < end]
        if not inside:
            continue  # a pause between regions: nothing to transcribe
        speech_start = max(start, min(r.start_ms for r in inside))
        speech_end = min(end, max(r.end_ms for r in inside))
        planned.append(PlannedSegment(start, end, speech_start, speech_end))
    return planned


DetectorFactory = Callable[[], SpeechDetector]
