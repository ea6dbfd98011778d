"""Building SenseVoiceSmall from a model directory, cheaply.

funasr's `AutoModel.build_model` builds the network with random weights, reads
`model.pt`, deep-copies it and copies it again into the network: three copies
of ~1 GB and seconds of random initialisation that are thrown away. A replica
that scales up from zero waits for all of it. Here the network is built on
the meta device (no memory, no initialisation) and the checkpoint is memory-
mapped and assigned, so its weights are read once, when first used.

Everything else comes from funasr itself: the config resolution of a model
directory (`configuration.json` + `config.yaml`), the registered tokenizer,
frontend and model classes, imported without the rest of funasr
(`engine.funasr_modules`). `build_with_funasr` is the plain funasr path, used
when a checkpoint cannot be memory-mapped.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hark_serving.engine.funasr_modules import import_model_code

log = logging.getLogger(__name__)


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    frontend: Any


def _unwrap(state: dict[str, Any]) -> dict[str, Any]:
    for key in ("state_dict", "model_state_dict", "model"):
        if key in state and isinstance(state[key], dict):
            state = state[key]
    return {k.removeprefix("module."): v for k, v in state.items()}


def resolve_config(model_dir: Path) -> dict[str, Any]:
    """funasr's reading of a local model directory (no hub access for a local path)."""
    from funasr.download.download_model_from_hub import download_model

    kwargs: dict[str, Any] = download_model(model=str(model_dir), disable_update=True)
    return kwargs


# torch.nn.init's in-place initialisers. On a meta tensor they compute nothing, but
# normal_ there runs a Python decomposition that imports torch._dynamo: 1-1.7 s of a
# start, for values the checkpoint replaces anyway.
_INITIALISERS = (
    "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
    "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
    "orthogonal_", "sparse_",
)  # fmt: skip
_initialisers_lock = threading.Lock()


def _unchanged(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return tensor


@contextlib.contextmanager
def _no_initialisers() -> Iterator[None]:
    """torch.nn.init's initialisers leave tensors as they are, while a model is built on meta."""
    with _initialisers_lock:
        saved = {name: getattr(torch.nn.init, name) for name in _INITIALISERS}
        try:
            for name in saved:
                setattr(torch.nn.init, name, _unchanged)
            yield
        finally:
            for name, function in saved.items():
                setattr(torch.nn.init, name, function)


def build_fast(model_dir: Path, device: str, dither: float = 0.0) -> Loaded:
    from funasr.register import tables
    from funasr.utils.misc import deep_update

    kwargs = resolve_config(model_dir)
    tokenizer_conf = dict(kwargs.get("tokenizer_conf") or {})
    tokenizer = tables.tokenizer_classes.get(kwargs["tokenizer"])(**tokenizer_conf)
    frontend_conf = {**(kwargs.get("frontend_conf") or {}), "dither": dither}
    frontend = tables.frontend_classes.get(kwargs["frontend"])(**frontend_conf)
    kwargs.update(
        tokenizer=tokenizer,
        frontend=frontend,
        vocab_size=tokenizer.get_vocab_size(),
        input_size=frontend.output_size(),
    )
    model_conf: dict[str, Any] = {}
    deep_update(model_conf, kwargs.get("model_conf", {}))
    deep_update(model_conf, kwargs)
    model_class = tables.model_classes.get(kwargs["model"])
    with torch.device("meta"), _no_initialisers():
        model = model_class(**model_conf)
    state = _unwrap(
        torch.load(kwargs["init_param"], map_location="cpu", mmap=True, weights_only=True)
    )
    model.load_state_dict(state, strict=True, assign=True)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"not in the checkpoint: {', '.join(left[:5])}")
    model.to(device).eval()
    return Loaded(model, tokenizer, frontend)


def build_with_funasr(model_dir: Path, device: str, threads: int, dither: float = 0.0) -> Loaded:
    from funasr import AutoModel

    model, kwargs = AutoModel.build_model(
        model=str(model_dir),
        device=device,
        ncpu=threads,
        frontend_conf={"dither": dither},
        disable_update=True,
        disable_log=True,
    )
    return Loaded(model, kwargs["tokenizer"], kwargs["frontend"])


def load(model_dir: Path, device: str, threads: int) -> Loaded:
    # funasr's model code without the 5 s import of the whole package (see funasr_modules).
    import_model_code()
    try:
        return build_fast(model_dir, device)
    except (RuntimeError, ValueError, KeyError, OSError) as exc:
        # Old pickle-format checkpoints cannot be memory-mapped; funasr reads them.
        log.warning("%s: fast load failed (%s); loading through funasr", model_dir, exc)
        return build_with_funasr(model_dir, device, threads)
