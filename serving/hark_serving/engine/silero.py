"""Silero VAD's sequence model and its timestamp rules, without importing torch.

The `silero-vad` package ships the sequence model (a block of up to 512 frames
per ONNX Runtime call, the same per-frame probabilities as the streaming model)
and a torch-free state machine that turns probabilities into speech regions,
`get_speech_timestamps_from_probs`. But every module of the package imports
torch first (`import silero_vad` also sets torch to one thread), which costs a
torch-free start (`engine.onnx_model`) more than a second.

So this module runs the model file from the package's data folder in its own
ONNX Runtime session, framed as the package frames it, and takes the state
machine's own code from the package's source: the one function is compiled on
its own, so neither torch nor the rest of the module runs. A package without
them (older than 6.2.3) is named in an ImportError.
tests/unit/engine/test_silero.py holds both to the package's own results.
"""

from __future__ import annotations

import ast
import importlib.util
import threading
import typing
import warnings
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

MODEL_FILE = "silero_vad_16k_sequence.onnx"
FRAME_SAMPLES, CONTEXT_SAMPLES = 512, 64  # at 16 kHz
MAX_FRAMES = 512
STATE_SHAPE = (1, 1, 128)


def package_dir() -> Path:
    spec = importlib.util.find_spec("silero_vad")  # finds it without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the silero-vad package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def timestamps_function() -> Callable[..., list[dict[str, int]]]:
    """The package's `get_speech_timestamps_from_probs`, compiled from its source alone."""
    source_file = package_dir() / "utils_vad.py"
    try:
        tree = ast.parse(source_file.read_text(encoding="utf-8"), str(source_file))
        node = next(
            n
            for n in tree.body
            if isinstance(n, ast.FunctionDef) and n.name == "get_speech_timestamps_from_probs"
        )
    except (OSError, SyntaxError, StopIteration) as exc:
        raise ImportError(
            f"{source_file} has no get_speech_timestamps_from_probs; install silero-vad "
            "6.2.3 or later (pip install 'silero-vad>=6.2.3')"
        ) from exc
    namespace: dict[str, Any] = {"List": list, "Callable": Callable, "warnings": warnings}
    exec(compile(ast.Module([node], type_ignores=[]), str(source_file), "exec"), namespace)
    return typing.cast(Callable[..., list[dict[str, int]]], namespace[node.name])


def frame_blocks(audio: np.ndarray, max_frames: int = MAX_FRAMES) -> Iterator[np.ndarray]:
    """(frames, context + frame) blocks: each frame after the last 64 samples of the one before.

    As the package's `frame_blocks`: zeros before the first frame, the last frame
    padded with zeros.
    """
    count = (audio.size + FRAME_SAMPLES - 1) // FRAME_SAMPLES
    previous = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
    for first in range(0, count, max_frames):
        frames_here = min(max_frames, count - first)
        begin = first * FRAME_SAMPLES
        samples = audio[begin : min(audio.size, (first + frames_here) * FRAME_SAMPLES)]
        frames = np.zeros((frames_here, FRAME_SAMPLES), dtype=np.float32)
        frames.reshape(-1)[: samples.size] = samples
        contexts = np.empty((frames_here, CONTEXT_SAMPLES), dtype=np.float32)
        contexts[0] = previous
        contexts[1:] = frames[:-1, -CONTEXT_SAMPLES:]
        previous = frames[-1, -CONTEXT_SAMPLES:].copy()
        yield np.concatenate((contexts, frames), axis=1)


class SequenceModel:
    """The sequence model in one ONNX Runtime session, shared by threads (state is per call)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or package_dir() / "data" / MODEL_FILE
        self._lock = threading.Lock()
        self._session: Any = None

    def session(self) -> Any:
        with self._lock:
            if self._session is None:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = 1  # detectors run on threads of their own
                options.inter_op_num_threads = 1
                self._session = ort.InferenceSession(
                    str(self.path), options, providers=["CPUExecutionProvider"]
                )
            return self._session

    def probabilities(self, audio: np.ndarray) -> np.ndarray:
        """Speech probability of each 32 ms frame of 16 kHz `audio`."""
        session = self.session()
        hidden = np.zeros(STATE_SHAPE, dtype=np.float32)
        cell = np.zeros(STATE_SHAPE, dtype=np.float32)
        out = []
        for block in frame_blocks(np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)):
            values, hidden, cell = session.run(
                ["speech_probs", "hn", "cn"], {"input": block, "h": hidden, "c": cell}
            )
            out.append(values)
        return np.concatenate(out).reshape(-1) if out else np.zeros(0, dtype=np.float32)
