"""What a model batch takes and gives: plain data, no torch.

The Serve app's deployments pass these between processes, and the HTTP edge
imports them, so they live apart from the model code in `sensevoice`.
"""

from __future__ import annotations

from dataclasses import dataclass

# SenseVoice stacks 6 feature frames of 10 ms: one encoder frame is 60 ms.
FRAME_SECONDS = 0.06
# Four query positions (language, event, emotion, text norm) precede the audio.
QUERY_FRAMES = 4
SAMPLES_PER_FRAME = 960


@dataclass(frozen=True)
class DecodeRequest:
    language: str = "auto"
    use_itn: bool = True
    words: bool = False


@dataclass(frozen=True)
class WordTiming:
    text: str
    start: float  # seconds from the start of the segment's audio
    end: float


@dataclass(frozen=True)
class Recognized:
    raw: str
    words: tuple[WordTiming, ...] | None = None


def encoder_frames(samples: int) -> int:
    """Encoder frames for a segment of `samples` (what a batch pays for)."""
    return samples // SAMPLES_PER_FRAME + 1 + QUERY_FRAMES
