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
version), and later starts load it as it is. Only the optimisations that hold
on any CPU are saved ("extended"; the CPU-specific layout changes are left
out), so a cache shared by different nodes stays valid.

The saved graph keeps its weights in a file of their own, which ONNX Runtime
maps instead of parsing them out of the graph: on two cores the full model
loaded in 0.56-0.62 s so, against 1.08-1.19 s with the weights inside the
graph, and the process held 316 MB instead of 458 MB after its first call.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
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


def _build(version: str) -> str:
    return "".join(c if c.isalnum() or c in "._" else "_" for c in version)


def optimized_files(folder: Path, version: str) -> tuple[Path, Path]:
    """The optimised graph that ONNX Runtime `version` saves in `folder`, and its weights."""
    stem = f"optimized-ort-{_build(version)}"
    return folder / f"{stem}.onnx", folder / f"{stem}.weights"


def _legacy_graph(folder: Path, version: str) -> Path:
    """Where earlier releases saved the optimised graph, weights inside it."""
    return folder / f"model.int8.ort-{_build(version)}.onnx"


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

    graph, _ = optimized_files(folder, ort.__version__)
    if graph.is_file():
        try:
            return ort.InferenceSession(
                str(graph), _options(threads, True), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # damaged, or its weights missing: optimise the export again
            log.warning("cannot load the optimised graph %s (%s); optimising %s again",
                        graph, exc, GRAPH)  # fmt: skip
    return optimise(folder, threads)


def optimise(folder: Path, threads: int) -> Any:
    """A session on the folder's exported graph; the optimised graph is saved for later starts.

    Both files are written under a temporary folder and renamed into place, the
    weights first, so a graph in place always finds its weights. Two processes
    that save at once write the same bytes (ONNX Runtime's optimisation and its
    layout of the weights are deterministic), so neither can pair a graph with
    the other's weights. A read-only folder is optimised again at each start.
    """
    import onnxruntime as ort

    graph, weights = optimized_files(folder, ort.__version__)
    options = _options(threads, False)
    work: Path | None = None
    with contextlib.suppress(OSError):
        work = Path(tempfile.mkdtemp(prefix=".ort-", dir=folder))
        options.optimized_model_filepath = str(work / graph.name)
        # Relative to the graph: the pair stays valid when the folder is renamed.
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", weights.name
        )
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
        )
    try:
        session = ort.InferenceSession(
            str(folder / GRAPH), options, providers=["CPUExecutionProvider"]
        )
        if work is not None and (work / graph.name).is_file() and (work / weights.name).is_file():
            try:
                for saved in (weights, graph):
                    os.chmod(work / saved.name, 0o644)
                    os.replace(work / saved.name, saved)
                _legacy_graph(folder, ort.__version__).unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot save the optimised graph in %s (%s)", folder, exc)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
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
        from hark_serving.engine.cpu import default_threads, single_threaded_blas

        started = time.perf_counter()
        single_threaded_blas()
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
