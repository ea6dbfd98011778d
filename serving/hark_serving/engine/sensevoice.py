"""SenseVoiceSmall inference: batches of 16 kHz segments in, rich text out.

The model, its tokenizer and its frontend are funasr's own classes, built from
the model directory as `funasr.AutoModel` builds them (see `hark_serving.engine.loading`), with
feature dithering off, so the same audio always gives the same text. The forward pass mirrors
`SenseVoiceSmall.inference` with two differences that matter for serving:

- the language and text-normalisation queries are chosen per row, so one batch
  can hold segments of requests that asked for different options;
- the greedy CTC path is kept, which gives word timestamps for free (the frame
  at which each token fires) instead of a second forced-alignment pass.

Precision (`precision`): `auto` runs the encoder under float16 autocast on
CUDA, and on a CPU with int8 weights wherever torch has a fast int8 kernel for it
(x86 with AVX2 or AVX-512, ARM), else in float32. `int8` runs the linear layers
with int8 weights and float32 activations; the weights are quantized once per
node and checked against float32 before first use (`hark_serving.engine.int8`).
On a CPU it is the fastest precision: about 2x float32 on the full model (with
the leaner encoder pass of `hark_serving.engine.encoder`), and faster
than bfloat16 even where the CPU computes bfloat16 in hardware. `bfloat16` is the
other reduced precision, and the one that gains from batching on such CPUs.
Reduced precision can change a transcript slightly, including with what else
shares its batch: `float32` is exact, byte for byte reproducible and the same
text as funasr's `AutoModel`, one flag away. When `auto` chose int8 and the
check refuses it, the model loads again in float32, with a warning; asked for
by name, int8 is refused instead.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hark_serving.engine import encoder
from hark_serving.engine.cpu import default_threads
from hark_serving.engine.ctc import decode_path
from hark_serving.engine.recognition import QUERY_FRAMES, DecodeRequest, Recognized
from hark_serving.errors import ModelError
from hark_serving.transcript.schema import ModelInfo

if TYPE_CHECKING:
    from hark_serving.engine.int8 import Int8Weights

log = logging.getLogger(__name__)


PRECISIONS = ("auto", "float32", "float16", "bfloat16", "int8")
# Run without autocast: float32 itself, and int8, whose quantized layers take float32 in and out.
FLOAT32_ACTIVATIONS = ("float32", "int8")


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (else oneDNN emulates it, slowly)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def fast_int8() -> bool:
    """Whether torch has a vectorised int8 kernel for this CPU (else int8 gains nothing)."""
    engine = torch.backends.quantized.engine
    if engine in ("x86", "fbgemm"):  # FBGEMM needs AVX2; without it, it falls back to scalar code
        return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
    return engine == "qnnpack"  # ARM


def resolve_precision(precision: str, device: str) -> str:
    """The dtype the encoder computes in on `device` (already resolved)."""
    cuda = device.startswith("cuda")
    if precision == "auto":
        if cuda:
            return "float16"
        return "int8" if fast_int8() else "float32"
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "float16" and not cuda:
        raise ModelError(
            "precision float16 runs on CUDA only; on CPU use bfloat16 (fast where the CPU has "
            "AVX512-BF16 or AMX) or float32"
        )
    if precision == "int8" and cuda:
        raise ModelError(
            f"precision int8 runs on the CPU only, but the device is {device}; use --device cpu "
            "with --precision int8, or on CUDA --precision auto (float16), bfloat16 or float32 "
            "(HARK_PRECISION / HARK_DEVICE)"
        )
    if precision == "bfloat16" and not cuda and not native_bfloat16():
        log.warning(
            "this CPU has no native bfloat16 (AVX512-BF16 or AMX): bfloat16 is emulated and "
            "slower than float32; set HARK_PRECISION=float32"
        )
    return precision


def warn_if_gpu_unused() -> None:
    """One log line when an NVIDIA GPU is here but torch cannot use it."""
    from hark_serving.engine.devices import cuda_unusable, nvidia_present, torch_cuda

    warning = cuda_unusable(nvidia_present(), torch_cuda())
    if warning:
        log.warning("%s", warning)


def resolve_device(device: str) -> str:
    if device == "auto":
        warn_if_gpu_unused()  # `cpu` asked for on purpose needs no warning
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(
            "HARK_DEVICE asks for cuda but torch sees no CUDA device; use --device cpu or auto, "
            "or run `hark doctor` to see why"
        )
    return device


class SenseVoice:
    """A loaded SenseVoiceSmall; `recognize` runs one call at a time unless
    `allow_concurrent_calls` says more."""

    def __init__(
        self,
        model_dir: Path,
        *,
        source: str | None = None,
        device: str = "auto",
        threads: int | None = None,
        precision: str = "auto",
        cache: Path | None = None,
        weights_sha256: str | None = None,
    ) -> None:
        """`cache`: the node's model cache (`HARK_MODEL_CACHE`), where int8 weights are kept;
        `weights_sha256`: model.pt's SHA-256 when the caller has just checked it (else hashed)."""
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.threads = threads or default_threads()
        torch.set_num_threads(self.threads)
        started = time.perf_counter()
        self._load(model_dir)
        self.int8: Int8Weights | None = None
        # int8 runs the leaner forward pass (engine.encoder: 1.1-1.5x), the int8 check's
        # probe included. float32 keeps funasr's own, for the same text as AutoModel;
        # float16 on CUDA and bfloat16 keep it too.
        self.lean = self.precision == "int8" and encoder.supports(self.model.encoder)
        if self.precision == "int8":
            from hark_serving.config import DEFAULT_MODEL_CACHE
            from hark_serving.engine.int8 import to_int8

            try:
                self.int8 = to_int8(
                    self.model,
                    model_dir / "model.pt",
                    cache or DEFAULT_MODEL_CACHE,
                    self.probe_logits,
                    weights_sha256=weights_sha256,
                )
            except ModelError as exc:
                if precision != "auto":
                    raise
                # Chosen for speed, not asked for: the exact float32 serves instead.
                log.warning("%s; precision auto loads the model in float32 instead", exc)
                self.precision = "float32"
                self.lean = False
                self._load(model_dir)  # the int8 attempt changed the model in place
        self.load_seconds = time.perf_counter() - started
        self.info = ModelInfo(
            name="SenseVoiceSmall",
            source=source or str(model_dir),
            device=self.device,
            dtype=self.precision,
            runtime="torch",
        )
        self._lanes = threading.BoundedSemaphore(1)
        self._busy = 0  # calls running now, under _busy_lock
        self._busy_lock = threading.Lock()
        self._omp = threading.local()  # this thread's OpenMP count, where this object set it
        self._omp.threads = self.threads  # set above, in this thread
        log.info(
            "model loaded from %s on %s (%s) in %.1fs",
            self.info.source,
            self.device,
            self.precision,
            self.load_seconds,
        )

    def _load(self, model_dir: Path) -> None:
        from hark_serving.engine.loading import load

        try:
            loaded = load(model_dir, self.device, self.threads)
        except Exception as exc:  # funasr raises bare asserts and RuntimeErrors
            from hark_serving.engine.libraries import load_failure

            raise load_failure(model_dir, exc) from exc
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.frontend = loaded.frontend
        self.blank_id: int = self.model.blank_id
        self._query_ids = self._queries()

    def _queries(self) -> dict[str, int]:
        ids = dict(self.model.lid_dict)
        ids.update(self.model.textnorm_dict)
        return ids

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision in FLOAT32_ACTIVATIONS:
            return contextlib.nullcontext()
        kind = "cuda" if self.device.startswith("cuda") else "cpu"
        return torch.autocast(kind, dtype=getattr(torch, self.precision))

    def recognize(
        self, waves: Sequence[np.ndarray], requests: Sequence[DecodeRequest]
    ) -> list[Recognized]:
        """Transcribe a batch: one result per wave, in order."""
        if len(waves) != len(requests):
            raise ValueError(f"{len(waves)} waves but {len(requests)} requests")
        if not waves:
            return []
        with self._lanes, self._running(), torch.inference_mode():
            speech, lengths = self._inputs(waves, requests)
            with self._autocast():
                encoded, encoded_lengths = self._encode(self.model, speech, lengths)
                if self.lean:
                    # The best token of a frame is the largest logit: log_softmax only
                    # shifts each frame's logits, and costs an exp per vocabulary entry.
                    scores = self.model.ctc.ctc_lo(encoded)
                else:
                    scores = self.model.ctc.log_softmax(encoded)  # funasr's own, exactly
            best = scores.argmax(dim=-1).cpu()
            encoded_lengths = encoded_lengths.cpu()
        sp = self.tokenizer.sp
        return [
            decode_path(best[i, : int(encoded_lengths[i])].numpy(), self.blank_id, sp, r.words)
            for i, r in enumerate(requests)
        ]

    def allow_concurrent_calls(self, lanes: int) -> None:
        """Let `lanes` threads run `recognize` at once (before first use; default 1).

        The model's weights are only read, so calls can share it. Each call runs on
        this object's `threads` split between the calls running when it starts: alone
        it has all of them, beside another call half.
        """
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, got {lanes}")
        self._lanes = threading.BoundedSemaphore(lanes)

    @contextlib.contextmanager
    def _running(self) -> Iterator[None]:
        with self._busy_lock:
            self._busy += 1
            share = max(1, self.threads // self._busy)
        try:
            self._set_threads(share)
            yield
        finally:
            with self._busy_lock:
                self._busy -= 1

    def _set_threads(self, threads: int) -> None:
        """Give the calling thread `threads` compute threads.

        OpenMP keeps the thread count per calling thread: `torch.set_num_threads` in
        the constructor reaches only the thread that built the model. Another thread
        (the Serve Transcriber's model thread, an embedded engine's) starts from
        OMP_NUM_THREADS, which Ray sets to the actor's CPUs, and ran int8 at half speed
        on 2 cores while torch.get_num_threads() still said 2.
        """
        if getattr(self._omp, "threads", None) != threads:  # thread-local: idents get reused
            torch.set_num_threads(threads)
            self._omp.threads = threads

    def _inputs(
        self, waves: Sequence[np.ndarray], requests: Sequence[DecodeRequest]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features with the four query frames in front of each row, and their lengths."""
        from funasr.utils.load_utils import extract_fbank

        feats, lengths = extract_fbank(
            [torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)) for w in waves],
            frontend=self.frontend,
        )
        feats = feats.to(self.device)
        lengths = lengths.to(self.device)
        lang = [self._query_ids.get(r.language, 0) for r in requests]
        norm = [self._query_ids["withitn" if r.use_itn else "woitn"] for r in requests]
        embed = self.model.embed
        to = feats.device
        queries = torch.cat(
            (
                embed(torch.tensor(lang, device=to))[:, None, :],
                embed(torch.tensor([[1, 2]], device=to)).expand(len(waves), -1, -1),
                embed(torch.tensor(norm, device=to))[:, None, :],
            ),
            dim=1,
        )
        return torch.cat((queries, feats), dim=1), lengths + QUERY_FRAMES

    def _encode(
        self, model: Any, speech: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.lean:
            return encoder.forward(model.encoder, speech, lengths)
        encoded, encoded_lengths = model.encoder(speech, lengths)
        if isinstance(encoded, tuple):
            encoded = encoded[0]
        return encoded, encoded_lengths

    def probe_logits(self, model: Any) -> torch.Tensor:
        """`model`'s CTC logits on the fixed probe signal, as `recognize` computes them."""
        from hark_serving.engine.int8 import probe_wave

        with torch.inference_mode():
            speech, lengths = self._inputs([probe_wave()], [DecodeRequest()])
            encoded, _ = self._encode(model, speech, lengths)
            logits: torch.Tensor = model.ctc.ctc_lo(encoded)
        return logits
