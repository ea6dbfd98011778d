"""What the deployments send each other: plain, picklable data, no Ray types.

    Ingress ──UploadJob / ItemRequest──► Worker ──SegmentTask──► Transcriber
    Ingress ◄──TranscribeReply / ItemReply── Worker ◄──SegmentResult── Transcriber

Failures the client caused travel back as a `Failure` value rather than as a
raised exception, so the Ingress maps them to HTTP without depending on how
Ray wraps and pickles exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hark_serving.engine.recognition import DecodeRequest, Recognized, encoder_frames
from hark_serving.errors import HarkError
from hark_serving.options import TranscribeOptions
from hark_serving.runs.itemspec import ItemResult
from hark_serving.transcript.schema import ModelInfo, Transcript


@dataclass(frozen=True)
class SegmentTask:
    """One segment of one request: 16 kHz samples and how to decode them."""

    samples: np.ndarray
    request: DecodeRequest
    # When its request reached the Worker (Unix time) and its place in the file: the
    # Transcriber serves earlier requests first, so each finishes as soon as it can.
    since: float = 0.0
    index: int = 0

    @property
    def frames(self) -> int:
        return encoder_frames(len(self.samples))


@dataclass(frozen=True)
class BatchStats:
    """One model batch, reported once (with the first segment of the batch)."""

    segments: int
    frames: int  # padded: segments x longest
    seconds: float  # forward pass
    queued: int  # segments still waiting in the Transcriber when the batch ran
    padding: int = 0  # of `frames`, those that are padding (shorter segments filled up)


@dataclass(frozen=True)
class SegmentResult:
    recognized: Recognized
    seconds: float  # this segment's share of its batch's time
    batch: BatchStats | None = None


@dataclass(frozen=True)
class ModelStatus:
    ready: bool
    info: ModelInfo | None = None
    load_seconds: float = 0.0


@dataclass(frozen=True)
class Failure:
    code: str
    message: str

    @classmethod
    def of(cls, error: HarkError) -> Failure:
        return cls(error.code, str(error))


# A Worker's answer to an upload passed by path that lies on another node: send the bytes.
ELSEWHERE = "upload_elsewhere"


@dataclass(frozen=True)
class UploadJob:
    """An upload for a Worker: by path when the Worker shares the Ingress's node (the
    usual case: no copy of the file crosses processes), else by its bytes."""

    filename: str
    options: TranscribeOptions
    md5: str = ""
    request_id: str = ""
    size: int = 0
    path: str | None = None  # the Ingress's spool file
    node: str = ""  # the Ray node that holds `path`
    data: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TranscribeReply:
    transcript: Transcript | None = None
    failure: Failure | None = None
    batches: tuple[BatchStats, ...] = ()


@dataclass(frozen=True)
class ItemReply:
    result: ItemResult
    batches: tuple[BatchStats, ...] = ()
