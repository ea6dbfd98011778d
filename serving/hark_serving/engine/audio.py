"""Decoding any common audio or video file to 16 kHz float32 with PyAV.

`decode_audio` takes a path or a binary file object and returns one array per
output channel: a single mix (the mean of the source channels, as funasr mixes
them) or one per source channel for stereo call recordings. Memory stays
bounded on multi-hour files: past `spill_after_seconds` the samples go to a
temporary file and come back as read-only memory maps.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

import av
import numpy as np

from hark_serving.errors import (
    CorruptAudio,
    EmptyAudio,
    EmptyFile,
    NoAudioStream,
    TooLong,
    TooManyChannels,
    TruncatedAudio,
    UnsupportedFormat,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

TARGET_RATE = 16000
# A file whose decoded audio falls this far short of what its header declares
# was cut off (an interrupted upload, a partial copy).
TRUNCATION_RATIO = 0.9
TRUNCATION_MIN_SECONDS = 1.0
# Isolated bad packets are skipped as ffmpeg does; this many means the file is broken.
MAX_BAD_PACKETS = 50

# Names that identify a container well enough for users, by file extension.
_EXTENSION_FORMATS = {
    "wav", "mp3", "m4a", "aac", "flac", "ogg", "opus", "oga", "webm", "mp4", "mkv", "mov",
    "wma", "amr", "aiff", "aif", "caf", "3gp", "mka",
}  # fmt: skip


@dataclass(frozen=True)
class AudioInfo:
    format: str
    codec: str
    sample_rate: int
    channels: int
    duration: float


@dataclass
class DecodedAudio:
    """Decoded samples; `channels[i]` is 16 kHz float32 mono. Close it to drop spill files."""

    info: AudioInfo
    channels: list[np.ndarray]
    decode_seconds: float = 0.0
    _spill_files: list[Path] = field(default_factory=list, repr=False)

    @property
    def samples(self) -> int:
        return len(self.channels[0]) if self.channels else 0

    def close(self) -> None:
        self.channels = []
        for path in self._spill_files:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._spill_files.clear()

    def __enter__(self) -> DecodedAudio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Sink:
    """Collects decoded chunks per output channel, spilling to disk past a limit."""

    def __init__(self, n_out: int, spill_after: int, spill_dir: Path | None) -> None:
        self.chunks: list[list[np.ndarray]] = [[] for _ in range(n_out)]
        self.samples = 0
        self.spill_after = spill_after
        self.spill_dir = spill_dir
        self.files: list[BinaryIO] = []
        self.paths: list[Path] = []

    def add(self, per_channel: list[np.ndarray]) -> None:
        self.samples += len(per_channel[0])
        if not self.files and self.samples > self.spill_after:
            self._start_spill()
        if self.files:
            for f, chunk in zip(self.files, per_channel, strict=True):
                f.write(np.ascontiguousarray(chunk, dtype=np.float32).tobytes())
        else:
            for store, chunk in zip(self.chunks, per_channel, strict=True):
                store.append(chunk)

    def _start_spill(self) -> None:
        for store in self.chunks:
            fd, name = tempfile.mkstemp(prefix="hark-audio-", suffix=".f32", dir=self.spill_dir)
            f = os.fdopen(fd, "wb")
            self.files.append(f)
            self.paths.append(Path(name))
            for chunk in store:
                f.write(np.ascontiguousarray(chunk, dtype=np.float32).tobytes())
            store.clear()

    def arrays(self) -> list[np.ndarray]:
        if self.files:
            for f in self.files:
                f.close()
            # Copy-on-write: read from disk page by page, writable for torch, file untouched.
            return [np.memmap(p, dtype=np.float32, mode="c") for p in self.paths]
        return [
            np.concatenate(store).astype(np.float32, copy=False)
            if store
            else np.zeros(0, np.float32)
            for store in self.chunks
        ]

    def discard(self) -> None:
        for f in self.files:
            f.close()
        for p in self.paths:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


# Media comes from clients: FFmpeg may open only the file itself, and probe only
# container demuxers that read one self-contained file. Playlists and indirections
# (hls, dash, concat, ffconcat, image2, tee...) would open other files or URLs
# named inside the upload (a server-side request forgery or a local file read).
SAFE_DEMUXERS = (
    "wav,w64,mp3,aac,loas,flac,ogg,matroska,webm,mov,mp4,m4a,3gp,3g2,mj2,aiff,caf,amr,"
    "amrnb,amrwb,au,asf,avi,mpeg,mpegts,wv,ape,tta,ac3,eac3,dts,truehd,mlp,gsm,voc,"
    "mpc,mpc8,tak,shn,dsf,wsaud,xwma,flv,nut,rm,oma,spdif,s16le,s24le,s32le,f32le"
)
OPEN_OPTIONS: dict[str, str] = {
    "protocol_whitelist": "file",
    "format_whitelist": SAFE_DEMUXERS,
}


def _format_name(container: av.container.InputContainer, name: str) -> str:
    ext = Path(name).suffix.lower().lstrip(".")
    if ext in _EXTENSION_FORMATS:
        return ext
    return str(container.format.name).split(",")[0]


def _open(source: str | Path | BinaryIO, name: str) -> av.container.InputContainer:
    if isinstance(source, (str, Path)):
        try:
            size = os.path.getsize(source)
        except FileNotFoundError as exc:
            raise EmptyFile("file not found", subject=name) from exc
        if size == 0:
            raise EmptyFile("the file is empty (0 bytes); upload it again", subject=name)
    else:
        here = source.tell()
        empty = not source.read(1)
        source.seek(here)
        if empty:
            raise EmptyFile("the file is empty (0 bytes); upload it again", subject=name)
    try:
        return av.open(
            str(source) if isinstance(source, Path) else source,
            mode="r",
            metadata_errors="ignore",
            options=dict(OPEN_OPTIONS),
        )
    except av.error.InvalidDataError as exc:
        raise UnsupportedFormat(
            "not a recognised audio or video file; use wav, mp3, m4a/aac, flac, ogg/opus, "
            "webm or the audio track of mp4/mkv/mov",
            subject=name,
        ) from exc
    except av.error.FFmpegError as exc:
        if exc.errno != errno.EINVAL:
            raise CorruptAudio(f"cannot be opened: {exc}", subject=name) from exc
        # EINVAL at open: a demuxer outside SAFE_DEMUXERS (a playlist, a concat list).
        raise UnsupportedFormat(
            "not an accepted audio or video file: playlists (m3u8), concat lists and other "
            "files that name further files or URLs are refused; upload the media itself",
            subject=name,
        ) from exc
    except OSError as exc:
        raise CorruptAudio(f"cannot be opened: {exc}", subject=name) from exc


def _declared_seconds(
    stream: av.audio.stream.AudioStream,
    container: av.container.InputContainer,
    source: str | Path | BinaryIO,
) -> float | None:
    """How long the file says its audio is, where it says so reliably.

    Raw bitstreams (ADTS AAC, mp3 without a Xing/Info/VBRI header) carry no
    length; ffmpeg estimates one from the bitrate, which is too rough to call a
    file truncated, so those are not checked.
    """
    name = container.format.name
    if name == "wav":
        # ffmpeg derives a WAV's duration from the bytes present; the header's data
        # chunk size is what the writer meant, so a cut-off file shows up here.
        return _read_head(source, _wav_header_seconds)
    if name in _RAW_BITSTREAMS or (name == "mp3" and not _read_head(source, _has_vbr_header)):
        return None
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and len(container.streams) == 1:
        # With a video track the container duration is the longest stream's.
        return float(container.duration) / 1_000_000
    return None


_RAW_BITSTREAMS = frozenset({"aac", "adts", "amr", "ac3", "eac3", "h264", "data"})


def _read_head(source: str | Path | BinaryIO, reader: Callable[[BinaryIO], T]) -> T:
    if isinstance(source, (str, Path)):
        with open(source, "rb") as f:
            return reader(f)
    here = source.tell()
    try:
        source.seek(0)
        return reader(source)
    finally:
        source.seek(here)


def _has_vbr_header(f: BinaryIO) -> bool:
    """Whether an mp3 starts with a Xing/Info/VBRI frame (which records its length)."""
    head = f.read(10)
    start = 0
    if head[:3] == b"ID3" and len(head) == 10:
        size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        start = 10 + size
    f.seek(start)
    first = f.read(4096)
    return any(tag in first for tag in (b"Xing", b"Info", b"VBRI"))


def _wav_header_seconds(f: BinaryIO) -> float | None:
    """Seconds declared by a RIFF/WAVE header (fmt byte rate, data chunk size)."""
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    byte_rate = 0
    for _ in range(64):
        chunk = f.read(8)
        if len(chunk) < 8:
            return None
        cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if cid == b"fmt ":
            fmt = f.read(size + (size & 1))
            byte_rate = struct.unpack("<I", fmt[8:12])[0] if len(fmt) >= 12 else 0
        elif cid == b"data":
            # 0 and 0xFFFFFFFF mean "unknown" (streamed writers).
            if not byte_rate or size in (0, 0xFFFFFFFF):
                return None
            return float(size / byte_rate)
        else:
            f.seek(size + (size & 1), 1)
    return None


def _frames(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream, name: str
) -> Iterator[av.AudioFrame]:
    bad = 0
    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.error.InvalidDataError:
            bad += 1
            if bad > MAX_BAD_PACKETS:
                raise CorruptAudio(
                    f"more than {MAX_BAD_PACKETS} undecodable packets; the file is corrupt",
                    subject=name,
                ) from None
    if bad:
        log.warning("%s: skipped %d undecodable packets", name, bad)


def decode_audio(
    source: str | Path | BinaryIO,
    *,
    name: str | None = None,
    split_channels: bool = False,
    max_seconds: float | None = None,
    spill_after_seconds: float = 600.0,
    spill_dir: Path | None = None,
    max_split_channels: int = 8,
) -> DecodedAudio:
    """Decode the first audio stream of `source` to 16 kHz float32.

    Raises an `InputError` subclass naming the file for anything that is not
    decodable audio; silence is valid audio, zero samples is not.
    """
    name = name or (str(source) if isinstance(source, (str, Path)) else "upload")
    started = time.perf_counter()
    container = _open(source, name)
    sink: _Sink | None = None
    try:
        if not container.streams.audio:
            raise NoAudioStream(
                "the file has no audio stream (a video without sound?)", subject=name
            )
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        ctx.thread_type = "AUTO"  # frame threads for codecs that have them
        n_source = ctx.channels or 1
        if split_channels and n_source > max_split_channels:
            # Each split channel is a transcript of its own: bound the work and memory.
            raise TooManyChannels(
                f"the file has {n_source} audio channels; channels=split takes at most "
                f"{max_split_channels}; use channels=mix, or split the file first",
                subject=name,
            )
        info_rate = ctx.sample_rate or stream.sample_rate or 0
        n_out = n_source if split_channels else 1
        sink = _Sink(n_out, int(spill_after_seconds * TARGET_RATE), spill_dir)
        # Resample only; channels are mixed here (a plain mean, as funasr does) so
        # mono files come out sample-exact.
        resampler = av.AudioResampler(format="flt", layout=None, rate=TARGET_RATE)
        limit = int(max_seconds * TARGET_RATE) if max_seconds else None

        def push(frame: av.AudioFrame | None) -> None:
            for out in resampler.resample(frame):
                data = out.to_ndarray().reshape(-1, out.layout.nb_channels)
                if split_channels:
                    sink.add([data[:, i] for i in range(n_out)])  # type: ignore[union-attr]
                else:
                    mixed = (
                        data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
                    )
                    sink.add([mixed])  # type: ignore[union-attr]
                if limit is not None and sink.samples > limit:  # type: ignore[union-attr]
                    raise TooLong(
                        f"longer than the {max_seconds:g} s limit; split the file or raise the limit",
                        subject=name,
                    )

        try:
            for frame in _frames(container, stream, name):
                push(frame)
            push(None)
        except av.error.FFmpegError as exc:
            raise CorruptAudio(f"decoding failed: {exc}", subject=name) from exc
        declared = _declared_seconds(stream, container, source)
        decoded = sink.samples / TARGET_RATE
        if sink.samples == 0:
            raise EmptyAudio("the file holds no audio samples", subject=name)
        if (
            declared
            and decoded < declared * TRUNCATION_RATIO
            and declared - decoded > TRUNCATION_MIN_SECONDS
        ):
            raise TruncatedAudio(
                f"decoded {decoded:.1f} s of the {declared:.1f} s its header declares; "
                "the file is truncated or corrupt, upload it again",
                subject=name,
            )
        info = AudioInfo(
            format=_format_name(container, name),
            codec=str(ctx.name),
            sample_rate=int(info_rate),
            channels=int(n_source),
            duration=round(decoded, 3),
        )
        arrays = sink.arrays()
        audio = DecodedAudio(info, arrays, time.perf_counter() - started, list(sink.paths))
        sink = None  # ownership of spill files moved to `audio`
        return audio
    finally:
        if sink is not None:
            sink.discard()
        container.close()
