"""SenseVoice's input features in numpy: Kaldi filter banks, frame stacking, CMVN.

The same computation as funasr's `WavFrontend` (torchaudio's `kaldi.fbank`,
then `apply_lfr` and `apply_cmvn`), without torch, so the ONNX Runtime path
(`hark_serving.engine.onnx_model`) starts without importing it. Every step is
vectorised over a segment's frames: framing by strides, one real FFT for all
frames, one matrix product onto the mel bins.

Float32 throughout, as torchaudio computes; the FFT runs in float64 inside
numpy and is rounded back, so values differ from torchaudio's in the last
bits. tests/unit/engine/test_features.py holds them to funasr's frontend.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

EPSILON = float(np.finfo(np.float32).eps)  # torchaudio's floor before the log


@dataclass(frozen=True)
class FrontendSettings:
    """`frontend_conf` of a SenseVoice model's config.yaml (funasr's WavFrontend options)."""

    fs: int = 16000
    window: str = "hamming"
    n_mels: int = 80
    frame_length: float = 25.0  # ms
    frame_shift: float = 10.0  # ms
    lfr_m: int = 7
    lfr_n: int = 6

    @classmethod
    def from_config(cls, conf: dict[str, Any]) -> FrontendSettings:
        known = {k: conf[k] for k in cls.__dataclass_fields__ if k in conf}
        settings = cls(**known)
        if settings.window not in ("hamming", "hann", "povey", "rectangular"):
            raise ValueError(f"frontend window {settings.window!r} is not supported")
        return settings


def load_cmvn(path: Path) -> np.ndarray:
    """funasr's `load_cmvn`: the (2, dim) shift and scale of a Kaldi nnet `am.mvn`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    shift: list[str] = []
    scale: list[str] = []
    for i, line in enumerate(lines[:-1]):
        head = line.split()[:1]
        follow = lines[i + 1].split()
        if head == ["<AddShift>"] and follow[:1] == ["<LearnRateCoef>"]:
            shift = follow[3:-1]
        elif head == ["<Rescale>"] and follow[:1] == ["<LearnRateCoef>"]:
            scale = follow[3:-1]
    if not shift or len(shift) != len(scale):
        raise ValueError(f"{path}: no <AddShift>/<Rescale> rows of the same size")
    return np.array([shift, scale], dtype=np.float32)


def _window(kind: str, size: int) -> np.ndarray:
    n = np.arange(size, dtype=np.float64)
    if kind == "rectangular":
        return np.ones(size, dtype=np.float32)
    cosine = np.cos(2 * np.pi * n / (size - 1))
    if kind == "hamming":
        return (0.54 - 0.46 * cosine).astype(np.float32)
    hann = 0.5 - 0.5 * cosine
    return (hann**0.85 if kind == "povey" else hann).astype(np.float32)


def _mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_banks(bins: int, fft_size: int, fs: int, low: float = 20.0) -> np.ndarray:
    """torchaudio's `get_mel_banks` (Kaldi's triangles on the mel scale), (fft_size/2+1, bins)."""
    half = fft_size // 2
    mel_low, mel_high = _mel(low), _mel(fs / 2)
    delta = (mel_high - mel_low) / (bins + 1)
    left = mel_low + np.arange(bins)[:, None] * delta
    center, right = left + delta, left + 2 * delta
    mel = _mel(fs / fft_size * np.arange(half))[None, :]
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    weights = np.maximum(0.0, np.minimum(up, down))
    weights = np.pad(weights, ((0, 0), (0, 1)))  # Kaldi's zero weight for the Nyquist bin
    return np.ascontiguousarray(weights.T, dtype=np.float32)


class Frontend:
    """16 kHz float samples in [-1, 1] in, (frames, n_mels * lfr_m) features out."""

    def __init__(self, settings: FrontendSettings, cmvn: np.ndarray | None) -> None:
        self.settings = settings
        self.cmvn = cmvn
        self.frame = int(settings.fs * settings.frame_length / 1000)
        self.shift = int(settings.fs * settings.frame_shift / 1000)

    @cached_property
    def fft_size(self) -> int:
        return 1 << (self.frame - 1).bit_length()

    @cached_property
    def _banks(self) -> np.ndarray:
        return mel_banks(self.settings.n_mels, self.fft_size, self.settings.fs)

    def output_size(self) -> int:
        return self.settings.n_mels * self.settings.lfr_m

    def fbank(self, samples: np.ndarray) -> np.ndarray:
        """Log mel filter banks, one row per 10 ms frame (snip_edges, no dither)."""
        s = self.settings
        wave = np.asarray(samples, dtype=np.float32) * np.float32(1 << 15)
        # funasr shortens the window for a segment shorter than one frame.
        frame = min(self.frame, len(wave))
        if frame < 1:
            return np.zeros((0, s.n_mels), dtype=np.float32)
        count = 1 + (len(wave) - frame) // self.shift
        frames = np.lib.stride_tricks.as_strided(
            wave, (count, frame), (wave.strides[0] * self.shift, wave.strides[0]), writeable=False
        ).astype(np.float32)
        frames -= frames.mean(axis=1, keepdims=True)  # remove_dc_offset
        previous = np.concatenate((frames[:, :1], frames[:, :-1]), axis=1)
        frames -= np.float32(0.97) * previous  # pre-emphasis, first sample against itself
        frames *= _window(s.window, frame)
        fft_size = self.fft_size if frame == self.frame else 1 << (frame - 1).bit_length()
        spectrum = np.fft.rfft(frames, n=fft_size)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        banks = self._banks if frame == self.frame else mel_banks(s.n_mels, fft_size, s.fs)
        energies: np.ndarray = np.log(np.maximum(power @ banks, EPSILON))
        return energies

    def stack(self, feats: np.ndarray) -> np.ndarray:
        """funasr's `apply_lfr`: lfr_m frames side by side every lfr_n frames, edges repeated."""
        m, n = self.settings.lfr_m, self.settings.lfr_n
        count = feats.shape[0]
        if count == 0:
            return np.zeros((0, feats.shape[1] * m), dtype=np.float32)
        rows = -(-count // n)
        left = (m - 1) // 2
        # Row r takes frames r*n-left .. r*n-left+m-1, clamped to the segment's ends.
        index = np.clip(np.arange(rows)[:, None] * n - left + np.arange(m)[None, :], 0, count - 1)
        return feats[index].reshape(rows, -1)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        feats = self.stack(self.fbank(samples))
        if self.cmvn is not None:
            feats = (feats + self.cmvn[0]) * self.cmvn[1]
        return np.ascontiguousarray(feats, dtype=np.float32)
