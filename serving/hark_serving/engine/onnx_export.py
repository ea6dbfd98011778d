"""SenseVoiceSmall exported to ONNX with int8 weights, for a start without torch.

`hark model export` (or the first start with `HARK_RUNTIME=onnx`) builds, once
per weights file and node, a folder in the model cache:

    <cache>/onnx/sensevoice-<SHA-256 of model.pt>-v<EXPORT_FORMAT>/
        model.int8.onnx   the encoder and CTC head, linear layers in int8
        optimized-ort-<ver>.onnx, .weights
                          the same graph as ONNX Runtime <ver> optimises it, and
                          its weights (`engine.onnx_model`); made by the check
        tokens.model      the sentencepiece model (copied from the model folder)
        am.mvn            the frontend's normalisation (copied)
        export.json       frontend settings, query ids, blank id, and the check

The graph takes features without the query frames and the language and
text-norm ids, and adds the four query frames itself (the embedding rows are in
the graph, as in funasr's own export), then runs the leaner encoder pass of
`engine.encoder` with its padding masks always on, and projects onto the
vocabulary: CTC logits, each frame's best token, and the rows' lengths. A run
fetches only the best tokens; the logits are for the check.

The float32 graph is exported by torch's TorchScript exporter, then ONNX Runtime's
dynamic quantization turns its MatMul weights into int8 (signed, 7-bit range, per
output channel; activations quantized per call). Before the folder is used it is
checked: the float32 model in torch and the int8 graph in ONNX Runtime run on
the same probe as the torch int8 path (`engine.int8`), and their CTC logits may
differ by at most `ONNX_TOLERANCE` (relative L2). A graph that differs more is
refused with a `ModelError`, and nothing is cached.

The folder is written under a temporary name and renamed into place under a
file lock: replicas that start together export once, and a reader never sees
half a folder. `export.json` is written last; a folder without it is not used.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hark_serving.engine.onnx_folder import (
    CMVN,
    EXPORT_FORMAT,
    GRAPH,
    MANIFEST,
    TOKENS,
    export_dir,
    read_manifest,
)
from hark_serving.engine.onnx_model import optimise
from hark_serving.errors import ModelError

log = logging.getLogger(__name__)

ONNX_TOLERANCE = 0.2  # the same bound as the torch int8 path (docs/precision.md)
OPSET = 17
FALLBACK = "run with HARK_RUNTIME=torch (and --precision int8 or float32) instead"


@dataclass(frozen=True)
class Exported:
    """An export folder that passed its check."""

    path: Path
    built: bool  # exported by this process, else found in the cache
    difference: float  # relative L2 difference of its CTC logits from float32 on the probe
    tolerance: float
    seconds: float


def relative_difference(candidate: np.ndarray, reference: np.ndarray) -> float:
    """||candidate - reference|| / ||reference|| (L2, over every element)."""
    if candidate.shape != reference.shape:
        return float("inf")
    scale = float(np.linalg.norm(reference.astype(np.float64)))
    diff = float(np.linalg.norm(candidate.astype(np.float64) - reference.astype(np.float64)))
    return diff / scale if scale else float("inf")


def refusal(difference: float, tolerance: float) -> str | None:
    if difference <= tolerance:
        return None
    return (
        f"the int8 ONNX export disagrees with float32: its CTC logits on the check signal "
        f"differ by {difference:.3f} (relative L2), above the tolerance {tolerance} "
        f"(ONNX_TOLERANCE; docs/precision.md); it was not cached; {FALLBACK}"
    )


def _graph_module(model: Any) -> Any:
    """The model as one torch module with the ONNX graph's inputs and outputs."""
    import torch

    from hark_serving.engine import encoder

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self,
            feats: torch.Tensor,
            lengths: torch.Tensor,
            language: torch.Tensor,
            textnorm: torch.Tensor,
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            embed = self.model.embed
            batch = feats.shape[0]
            events = embed(torch.tensor([[1, 2]], device=feats.device)).expand(batch, -1, -1)
            queries = torch.cat(
                (embed(language)[:, None, :], events, embed(textnorm)[:, None, :]), dim=1
            )
            speech = torch.cat((queries, feats), dim=1)
            encoded, encoded_lengths = encoder.forward(
                self.model.encoder, speech, lengths + 4, masked=True, explicit_attention=True
            )
            logits: torch.Tensor = self.model.ctc.ctc_lo(encoded)
            # The best token per frame is what a run fetches; logits are for the check.
            return logits, logits.argmax(dim=-1), encoded_lengths

    return Graph().eval()


def _probe_inputs(features: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "feats": features[None, :, :].astype(np.float32),
        "lengths": np.array([features.shape[0]], dtype=np.int32),
        "language": np.array([0], dtype=np.int64),  # auto
        "textnorm": np.array([14], dtype=np.int64),  # withitn
    }


def _export_float(graph: Any, probe: dict[str, np.ndarray], target: Path) -> None:
    import warnings

    import torch

    args = tuple(torch.from_numpy(probe[k]) for k in ("feats", "lengths", "language", "textnorm"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python values taken as constants
        torch.onnx.export(
            graph,
            args,
            str(target),
            input_names=["feats", "lengths", "language", "textnorm"],
            output_names=["logits", "best", "lengths_out"],
            dynamic_axes={
                "feats": {0: "batch", 1: "frames"},
                "lengths": {0: "batch"},
                "language": {0: "batch"},
                "textnorm": {0: "batch"},
                "logits": {0: "batch", 1: "encoded"},
                "best": {0: "batch", 1: "encoded"},
                "lengths_out": {0: "batch"},
            },
            opset_version=OPSET,
            dynamo=False,
        )


class _QuantizerChatter(logging.Filter):
    """Drops what ONNX Runtime's quantizer logs below ERROR on the root logger: a line
    for every tensor it leaves in float32 (about 150 for this model, on the first
    start of every node) and advice to pre-process the graph, which the export
    already is."""

    def filter(self, record: logging.LogRecord) -> bool:
        quantizer = f"onnxruntime{os.sep}quantization{os.sep}" in record.pathname
        return record.levelno >= logging.ERROR or not quantizer


def _quantize(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root, chatter = logging.getLogger(), _QuantizerChatter()
    root.addFilter(chatter)
    try:
        quantize_dynamic(
            str(source),
            str(target),
            op_types_to_quantize=["MatMul"],
            weight_type=QuantType.QInt8,
            per_channel=True,
            # 7-bit weights: x86 CPUs without VNNI sum u8*s8 products in int16, which
            # saturates with full 8-bit weights (the tiny model's logits were 0.45 off
            # float32 instead of 0.02). Per output channel wins back the precision.
            reduce_range=True,
        )
    finally:
        root.removeFilter(chatter)


def build(
    model_dir: Path, cache: Path, threads: int, weights_sha256: str | None = None,
    tolerance: float | None = None,
) -> Exported:  # fmt: skip
    """The checked export folder of the model in `model_dir`: from the cache, or made now.

    `tolerance`: the largest relative L2 difference accepted (default `ONNX_TOLERANCE`).
    """
    tolerance = ONNX_TOLERANCE if tolerance is None else tolerance
    from hark_serving.engine.model_cache import cache_lock, weights_digest

    started = time.perf_counter()
    digest = weights_sha256 or weights_digest(model_dir / "model.pt", cache)
    folder = export_dir(cache, digest)
    found = read_manifest(folder)
    if found is not None:
        return _exported(folder, found, False, started)
    with cache_lock(folder.with_name(folder.name + ".lock")) as writable:
        found = read_manifest(folder)  # another process may have finished it meanwhile
        if found is not None:
            return _exported(folder, found, False, started)
        if not writable:
            raise ModelError(
                f"cannot export the model for ONNX Runtime: the model cache {cache} is not "
                f"writable; point HARK_MODEL_CACHE at a writable directory, or {FALLBACK}"
            )
        log.info(
            "exporting %s for ONNX Runtime into %s: once per model and node (a minute or two "
            "for the full model on a few cores; `hark model export` does it ahead of time)",
            model_dir,
            folder,
        )
        folder.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
        try:
            manifest = _export_into(model_dir, work, threads, tolerance)
            if folder.exists():  # an incomplete folder from an interrupted export
                shutil.rmtree(folder)
            os.chmod(work, 0o755)
            os.replace(work, folder)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return _exported(folder, manifest, True, started)


def _exported(folder: Path, manifest: dict[str, Any], built: bool, started: float) -> Exported:
    check = manifest["check"]
    return Exported(
        folder, built, float(check["difference"]), float(check["tolerance"]),
        time.perf_counter() - started,
    )  # fmt: skip


def _export_into(model_dir: Path, work: Path, threads: int, tolerance: float) -> dict[str, Any]:
    import torch

    from hark_serving.engine.features import Frontend, FrontendSettings, load_cmvn
    from hark_serving.engine.int8 import probe_wave
    from hark_serving.engine.loading import load, resolve_config

    torch.set_num_threads(threads)
    try:
        loaded = load(model_dir, "cpu", threads)
        conf = resolve_config(model_dir)
    except Exception as exc:  # funasr raises bare asserts and RuntimeErrors
        from hark_serving.engine.libraries import load_failure

        raise load_failure(model_dir, exc) from exc
    model = loaded.model
    settings = FrontendSettings.from_config(dict(conf.get("frontend_conf") or {}))
    cmvn_file = (conf.get("frontend_conf") or {}).get("cmvn_file")
    cmvn = load_cmvn(Path(cmvn_file)) if cmvn_file else None
    probe = _probe_inputs(Frontend(settings, cmvn)(probe_wave()))
    graph = _graph_module(model)
    with torch.inference_mode():
        reference = graph(*(torch.from_numpy(probe[k]) for k in probe))[0].numpy()
    float_graph = work / "model.float32.onnx"
    _export_float(graph, probe, float_graph)
    _quantize(float_graph, work / GRAPH)
    float_graph.unlink()
    for leftover in work.glob("*.data"):  # external weights of the float32 graph, if any
        leftover.unlink()
    # The check runs the graph optimised as later starts run it, and saves that
    # graph into the folder: a start from the cache does not optimise again.
    candidate = optimise(work, threads).run(["logits"], probe)[0]
    difference = relative_difference(candidate, reference)
    refused = refusal(difference, tolerance)
    if refused:
        raise ModelError(refused)
    shutil.copyfile(Path(conf["tokenizer_conf"]["bpemodel"]), work / TOKENS)
    if cmvn_file:
        shutil.copyfile(Path(cmvn_file), work / CMVN)
    ids = {**dict(model.lid_dict), **dict(model.textnorm_dict)}
    manifest = {
        "format": EXPORT_FORMAT,
        "frontend": settings.__dict__,
        "cmvn": CMVN if cmvn_file else None,
        "queries": {k: int(v) for k, v in ids.items()},
        "blank_id": int(model.blank_id),
        "check": {"difference": difference, "tolerance": tolerance},
    }
    for file in work.iterdir():
        os.chmod(file, 0o644)
    (work / MANIFEST).write_text(json.dumps(manifest, indent=1))
    log.info("exported %s for ONNX Runtime; CTC logits within %.4f of float32", model_dir,
             difference)  # fmt: skip
    return manifest
