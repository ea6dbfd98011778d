"""SenseVoiceSmall in ONNX Runtime: the CPU's int8 path, started without torch or funasr.

It reads an export folder (`engine.onnx_export`) and needs only numpy,
onnxruntime and sentencepiece: the frontend is `engine.features`, the tokens are
turned into text and word timings by `engine.ctc`, as the torch path does. So a
start costs the Python imports, reading the graph, and nothing else: no torch
import (1.3 s and more), no network built in Python.

ONNX Runtime optimises a graph as it loads it (fusing each int8 matrix
product with its input's quantization, among others): 2-3 s for this model.
The optimised graph is saved once next to the exported one, named by the ONNX
Runtime version that made it (an optimised graph is only valid for that
version), and later starts load it as it is, in under a second. Only the
optimisations that hold on any CPU are saved ("extended"; the CPU-specific
layout changes are left out), so a cache shared by different nodes stays valid.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from hark_serving.engine.ctc import decode_path
from hark_serving.engine.features import Frontend, FrontendSettings, load_cmvn
from hark_serving.engine.onnx_folder import CMVN, GRAPH, TOKENS, read_manifest
from hark_serving.engine.recognition import DecodeRequest, Recognized
from hark_serving.errors import ModelError
from hark_serving.transcript.schema import ModelInfo

log = logging.getLogger(__name__)

RUNTIME = "onnxruntime"


def optimized_graph(folder: Path, version: str) -> Path:
    build = "".join(c if c.isalnum() or c in "._" else "_" for c in version)
    return folder / f"model.int8.ort-{build}.onnx"


def _options(threads: int, optimized: bool) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if optimized
        else ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    )
    return options


def open_session(folder: Path, threads: int) -> Any:
    """The folder's graph in a session: the saved optimised graph, else optimised and saved now."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    saved = optimized_graph(folder, ort.__version__)
    if saved.is_file():
        with contextlib.suppress(Exception):  # damaged or foreign: optimise the export again
            return ort.InferenceSession(str(saved), _options(threads, True), providers=providers)
        log.warning("cannot load the optimised graph %s; optimising %s again", saved, GRAPH)
    options = _options(threads, False)
    tmp: str | None = None
    with contextlib.suppress(OSError):  # a read-only cache: optimised again at the next start
        fd, tmp = tempfile.mkstemp(prefix=".ort-", suffix=".onnx", dir=folder)
        os.close(fd)
        options.optimized_model_filepath = tmp
    try:
        session = ort.InferenceSession(str(folder / GRAPH), options, providers=providers)
        if tmp is not None and os.path.getsize(tmp) > 0:
            os.chmod(tmp, 0o644)
            os.replace(tmp, saved)
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return session


class OnnxSenseVoice:
    """An exported SenseVoiceSmall (int8); `recognize` runs one call at a time unless
    `allow_concurrent_calls` says more.

    Alone (the embedded engine), a call runs its rows one by one, `threads` rows
    at once, each on one thread of a single-threaded session: ONNX Runtime
    splits a row's small matrix products over its threads poorly. On two
    cores, the benchmark's 149 speech segments (1-15 s) ran at 24.9 audio-s/s
    so, against 23.2 in the engine's padded batches on a two-thread session.
    A row alone is also what a batch of one gives, so the other files of a run
    cannot change a transcript (each int8 layer scales its input by the largest
    value in the whole batch).
    """

    runtime = RUNTIME
    device = "cpu"
    precision = "int8"

    def __init__(self, folder: Path, *, source: str, threads: int | None = None) -> None:
        from hark_serving.engine.cpu import default_threads

        started = time.perf_counter()
        manifest = read_manifest(folder)
        if manifest is None:
            raise ModelError(
                f"{folder} is not a complete ONNX export of SenseVoiceSmall; delete it and run "
                "`hark model export` again"
            )
        self.folder = folder
        self.threads = threads or default_threads()
        try:
            import sentencepiece as spm

            frontend = FrontendSettings(**manifest["frontend"])
            cmvn = load_cmvn(folder / CMVN) if manifest.get("cmvn") else None
            self.frontend = Frontend(frontend, cmvn)
            self.sp = spm.SentencePieceProcessor(model_file=str(folder / TOKENS))
            self.blank_id = int(manifest["blank_id"])
            self._query_ids: dict[str, int] = {k: int(v) for k, v in manifest["queries"].items()}
            self.session = open_session(folder, 1)
            self._session_threads = 1
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise ModelError(
                f"cannot load the ONNX export {folder} ({type(exc).__name__}: {exc}); delete the "
                "folder to export again, or set HARK_RUNTIME=torch"
            ) from exc
        self.difference = float(manifest["check"]["difference"])
        self.load_seconds = time.perf_counter() - started
        self.info = ModelInfo(source=source, device=self.device, dtype=self.precision,
                              runtime=self.runtime)  # fmt: skip
        self._lanes = threading.BoundedSemaphore(1)
        self._row_lanes = self.threads
        self._rows: ThreadPoolExecutor | None = None
        log.info("model loaded from %s on cpu (int8, ONNX Runtime) in %.1fs", source,
                 self.load_seconds)  # fmt: skip

    def allow_concurrent_calls(self, lanes: int) -> None:
        """Let `lanes` threads run `recognize` at once (before first use; default 1).

        Concurrent calls share the session, and with it its intra-op threads: two
        calls on a 2-thread session ran 23 audio-s/s on two cores, against 26 for
        two calls on a 1-thread session. So the session is opened again with the
        threads split between the lanes (once, when a Serve replica starts), and
        each call runs its rows in turn, on its share.
        """
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, got {lanes}")
        share = max(1, self.threads // lanes)
        if share != self._session_threads:
            self.session = open_session(self.folder, share)
            self._session_threads = share
        self._lanes = threading.BoundedSemaphore(lanes)
        self._row_lanes = 1

    def _inputs(
        self, waves: Sequence[np.ndarray], requests: Sequence[DecodeRequest]
    ) -> dict[str, np.ndarray]:
        feats = [self.frontend(w) for w in waves]
        lengths = np.array([f.shape[0] for f in feats], dtype=np.int32)
        batch = np.zeros((len(feats), int(lengths.max()), self.frontend.output_size()),
                         dtype=np.float32)  # fmt: skip
        for row, f in zip(batch, feats, strict=True):
            row[: f.shape[0]] = f
        ids = self._query_ids
        return {
            "feats": batch,
            "lengths": lengths,
            "language": np.array([ids.get(r.language, 0) for r in requests], dtype=np.int64),
            "textnorm": np.array(
                [ids["withitn" if r.use_itn else "woitn"] for r in requests], dtype=np.int64
            ),
        }

    def recognize(
        self, waves: Sequence[np.ndarray], requests: Sequence[DecodeRequest]
    ) -> list[Recognized]:
        """Transcribe a batch: one result per wave, in order."""
        if len(waves) != len(requests):
            raise ValueError(f"{len(waves)} waves but {len(requests)} requests")
        if not waves:
            return []
        with self._lanes:
            if self._row_lanes > 1 and len(waves) > 1:
                if self._rows is None:
                    self._rows = ThreadPoolExecutor(self._row_lanes, thread_name_prefix="hark-onnx")
                rows = self._rows.map(self._recognize_rows, [[w] for w in waves],
                                      [[r] for r in requests])  # fmt: skip
                return [result for (result,) in rows]
            return self._recognize_rows(waves, requests)

    def _recognize_rows(
        self, waves: Sequence[np.ndarray], requests: Sequence[DecodeRequest]
    ) -> list[Recognized]:
        best, lengths = self.session.run(["best", "lengths_out"], self._inputs(waves, requests))
        return [
            decode_path(best[i, : int(lengths[i])], self.blank_id, self.sp, r.words)
            for i, r in enumerate(requests)
        ]
