"""int8 weights for the CPU: torch's dynamic quantization, cached per node, checked at load.

`precision=int8` turns every `nn.Linear` of the loaded float32 SenseVoiceSmall
(attention, feed-forward and the CTC head: nearly all of its weights) into
torch's dynamically quantized linear layer (`quantize_dynamic`, qint8 weights
quantized per tensor). Activations stay float32: each layer quantizes its input
on the fly and returns float32, so the rest of the pipeline sees the tensors it
always sees, and no autocast applies.

Quantizing the full model takes seconds, so the result is kept in the node's
model cache (`HARK_MODEL_CACHE`), one file per weights file and torch build:

    <cache>/int8/sensevoice-<SHA-256 of model.pt>-torch<version>-<engine>-v1.pt

The key is the SHA-256 of the weights' bytes (taken from the digest a hub copy
was just verified against, or else hashed and remembered in
`<cache>/int8/digests/` against the file's size, mtime, ctime and inode, so a start
hashes a local model.pt again only after it changed), so changed weights get
a file of their own; torch's version and quantized engine name the
code that packed it. The file is written once, to a temporary name renamed into
place, under a file lock, so replicas that start together on one node build it
once. A cache that cannot be written (a read-only volume) costs a rebuild per
start, with a warning, never a failure.

The check, before first use of int8 weights built in this process or read from
a cache file that no check has passed yet: the float32 model and the int8 model run on the same
fixed probe, `PROBE_SECONDS` of a fixed-seed synthetic voiced signal through the
real frontend, and their CTC logits (the encoder output projected onto the
vocabulary, what the decoder picks tokens from) are compared as the relative
L2 difference ||z_int8 - z_float32|| / ||z_float32||. Above `INT8_TOLERANCE` the
model is refused with a `ModelError` that names both figures and the fall-back.

A check that passed is recorded beside the cache file (`<file>.check.json`: the
figure, and the file's size, mtime, ctime and inode). A later start that finds
the file unchanged trusts that record and skips both probe passes: they cost
about a second, and reading every float32 weight of the linear layers only to
compare (the memory-mapped checkpoint is otherwise never read for them). Any
write to the cache file changes its stamp, so a replaced or damaged file is
checked again. The record is as trustworthy as the cache file itself: whoever
can write one can write the other, as they can write model.pt.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hark_serving.engine.model_cache import cache_lock, stamp, weights_digest
from hark_serving.errors import ModelError

log = logging.getLogger(__name__)

# Largest accepted relative L2 difference between the int8 and float32 CTC logits
# on the probe. Honest int8 measures 0.03-0.05 on the random-weight test models
# (tiny and full size); a wrong layer measures 0.1-1.4 (docs/precision.md).
INT8_TOLERANCE = 0.2
PROBE_SECONDS = 3.0
PROBE_SEED = 0
SAMPLE_RATE = 16000
CACHE_FORMAT = 1  # bump when the file's layout changes
FALLBACK = "run with --precision float32 (exact) or bfloat16 instead (HARK_PRECISION)"


@dataclass(frozen=True)
class Int8Weights:
    """Where a model's int8 weights came from, and how they compared with float32."""

    path: Path  # the cache file (absent when it could not be written)
    built: bool  # quantized in this process, else read from the cache
    saved: bool  # written to the cache by this process
    difference: float  # relative L2 difference of the CTC logits on the probe
    tolerance: float  # the largest difference accepted
    seconds: float  # hashing, quantizing or reading, checking and saving
    checked: bool = True  # probed in this process, else a recorded check of the file was trusted


def probe_wave(seconds: float = PROBE_SECONDS, seed: int = PROBE_SEED) -> np.ndarray:
    """A fixed, speech-like 16 kHz signal: a gliding harmonic voice, syllable beats, some noise."""
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    beats = 0.5 * (1 + np.sin(2 * np.pi * 4 * t))
    noise = np.random.default_rng(seed).standard_normal(t.size)
    wave: np.ndarray = (0.1 * beats * voiced + 0.01 * noise).astype(np.float32)
    return wave


def cache_file(cache: Path, weights_digest: str) -> Path:
    """The cache file of int8 weights quantized from the weights with this SHA-256."""
    build = "".join(c if c.isalnum() or c in "._" else "_" for c in torch.__version__)
    engine = torch.backends.quantized.engine
    name = f"sensevoice-{weights_digest}-torch{build}-{engine}-v{CACHE_FORMAT}.pt"
    return cache / "int8" / name


def quantize(model: Any) -> None:
    """Replace every `nn.Linear` of `model` by torch's dynamically quantized qint8 layer."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        # torch points eager-mode quantization at torchao; it is still torch's own here.
        warnings.filterwarnings(
            "ignore", message="torch.ao.quantization is deprecated", category=DeprecationWarning
        )
        linear: set[type[torch.nn.Module]] = {torch.nn.Linear}
        quantize_dynamic(model, linear, dtype=torch.qint8, inplace=True)  # type: ignore[no-untyped-call]


def int8_layout(module: torch.nn.Module) -> None:
    """Swap in empty quantized layers where `quantize` puts them, to load a cached state.

    `quantize_dynamic` matches the exact type `nn.Linear` (subclasses keep float),
    and so does this.
    """
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    for name, child in module.named_children():
        if type(child) is torch.nn.Linear:
            # A 1x1 placeholder: the loaded state replaces its weight, and packing a
            # full-size empty matrix first would cost as much as loading the real one.
            empty = DynamicLinear(1, 1, bias_=child.bias is not None)  # type: ignore[no-untyped-call]
            empty.in_features, empty.out_features = child.in_features, child.out_features
            setattr(module, name, empty)
        else:
            int8_layout(child)


def relative_difference(candidate: torch.Tensor, reference: torch.Tensor) -> float:
    """||candidate - reference|| / ||reference|| (L2, over every element)."""
    if candidate.shape != reference.shape:
        return float("inf")
    scale = float(torch.linalg.vector_norm(reference.float()))
    diff = float(torch.linalg.vector_norm(candidate.float() - reference.float()))
    return diff / scale if scale else float("inf")


def disagreement(difference: float, tolerance: float, cached: Path | None) -> str | None:
    """The refusal when int8 is too far from float32, or None when it is close enough."""
    if difference <= tolerance:
        return None
    origin = (
        f"the int8 weights were read from the cache file {cached}: delete it to quantize again"
        if cached is not None
        else "the int8 weights were quantized just now and were not cached"
    )
    return (
        f"int8 weights disagree with float32: their CTC logits on the check signal differ "
        f"by {difference:.3f} (relative L2), above the tolerance {tolerance} "
        f"(INT8_TOLERANCE; docs/precision.md); {origin}; {FALLBACK}"
    )


def _check_record(path: Path) -> Path:
    return path.with_name(path.name + ".check.json")


def recorded_difference(path: Path) -> float | None:
    """The difference a passed check measured for the cache file `path`, if it is unchanged since."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        record = json.loads(_check_record(path).read_text())
        if record["stamp"] == stamp(path) and record["probe"] == [PROBE_SECONDS, PROBE_SEED]:
            return float(record["difference"])
    return None


def _record_check(path: Path, difference: float) -> None:
    record = {"stamp": stamp(path), "probe": [PROBE_SECONDS, PROBE_SEED], "difference": difference}
    try:
        fd, tmp = tempfile.mkstemp(prefix=".check-", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, _check_record(path))
    except OSError as exc:  # a read-only cache: checked again next time
        log.debug("could not record the check of %s: %s", path, exc)


def _read_cached(model: Any, path: Path) -> None:
    try:
        with warnings.catch_warnings():
            # torch's own unpickling of quantized tensors still goes through TypedStorage.
            warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
            state = torch.load(path, map_location="cpu", weights_only=True)
        int8_layout(model)
        load_packing_in_parallel(model, state)
    except Exception as exc:  # a damaged zip, a foreign pickle, a layout that does not fit
        raise ModelError(
            f"cannot read the cached int8 weights {path} ({type(exc).__name__}: {exc}); delete "
            f"the file to quantize again, or {FALLBACK}"
        ) from exc


def load_packing_in_parallel(model: torch.nn.Module, state: dict[str, Any]) -> None:
    """`model.load_state_dict(state, strict=True)`, the quantized layers loaded on several threads.

    Loading a quantized layer packs its int8 weights for FBGEMM: about 1.1 s of
    an int8 start on the full model, one layer after another, though the packing
    releases the GIL. So the rest of the model loads first, without those layers,
    then each layer loads its own part of `state` on a thread pool; every part is
    loaded strictly, so a missing or unexpected key still fails the load.
    """
    from concurrent.futures import ThreadPoolExecutor

    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, DynamicLinear)]
    parts: dict[str, OrderedDict[str, Any]] = {name: OrderedDict() for name, _ in layers}
    for key in list(state):
        name, _, rest = key.partition("._packed_params.")
        owner = name if rest else key.rpartition(".")[0]
        if owner in parts:
            parts[owner][key[len(owner) + 1 :]] = state.pop(key)
    # Each layer reads its format version from the state's metadata, keyed by module name.
    metadata = getattr(state, "_metadata", {})
    for name, part in parts.items():
        part._metadata = OrderedDict(  # type: ignore[attr-defined]
            (key[len(name) + 1 :], value)
            for key, value in metadata.items()
            if key == name or key.startswith(name + ".")
        )
    # The layers leave the model while the rest loads (their keys are no longer in `state`).
    for name, _ in layers:
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent), attr, torch.nn.Identity())
    try:
        model.load_state_dict(state, strict=True)
    finally:
        for name, layer in layers:
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent), attr, layer)
    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
        list(pool.map(lambda item: item[1].load_state_dict(parts[item[0]], strict=True), layers))


def _save(model: Any, path: Path) -> bool:
    try:
        fd, tmp = tempfile.mkstemp(prefix=".int8-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(model.state_dict(), f)
            os.chmod(tmp, 0o644)  # as readable as the model files beside it (mkstemp: 0600)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    except OSError as exc:
        log.warning("could not cache the int8 weights in %s (%s); they are quantized again "
                    "at the next start", path, exc)  # fmt: skip
        return False
    return True


def to_int8(
    model: Any,
    weights: Path,
    cache: Path,
    probe: Callable[[Any], torch.Tensor],
    tolerance: float = INT8_TOLERANCE,
    weights_sha256: str | None = None,
) -> Int8Weights:
    """Turn the float32 `model` (loaded from `weights`) into int8, in place, checked.

    `probe(model)` returns the CTC logits of the fixed probe signal; it runs once
    before and once after. `weights_sha256` spares hashing `weights` again when the
    loader has just verified them. Raises `ModelError` when the logits differ by more
    than `tolerance`, or when a cached file cannot be read; the model is then unusable.
    """
    started = time.perf_counter()
    path = cache_file(cache, weights_sha256 or weights_digest(weights, cache))
    with cache_lock(path.with_name(path.name + ".lock")) as writable:
        cached = path.is_file()
        recorded = recorded_difference(path) if cached else None
        trusted = recorded is not None and recorded <= tolerance
        if recorded is not None and trusted:
            _read_cached(model, path)
            difference = recorded
        else:
            reference = probe(model)
            if cached:
                _read_cached(model, path)
            else:
                quantize(model)
            difference = relative_difference(probe(model), reference)
            refusal = disagreement(difference, tolerance, path if cached else None)
            if refusal:
                raise ModelError(refusal)
        saved = not cached and writable and _save(model, path)
        if writable and not trusted and (saved or cached):
            _record_check(path, difference)
    seconds = time.perf_counter() - started
    weights_info = Int8Weights(
        path, not cached, saved, difference, tolerance, seconds, checked=not trusted
    )
    log.info(
        "int8 weights %s %s in %.1fs; CTC logits differ from float32 by %.4f (tolerance %s%s)",
        "read from" if cached else ("quantized into" if saved else "quantized, not cached in"),
        path,
        seconds,
        difference,
        tolerance,
        "; a check recorded for this file" if trusted else "",
    )
    return weights_info
