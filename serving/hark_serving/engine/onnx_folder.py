"""What an ONNX export folder holds, and how to tell a complete one: no torch here.

`engine.onnx_export` writes the folder; `engine.onnx_model` reads it at a start
that must not import torch, so the layout lives apart from the export code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXPORT_FORMAT = 2  # bump when the folder's layout or the graph changes (2: explicit attention)
MANIFEST = "export.json"
GRAPH = "model.int8.onnx"
TOKENS = "tokens.model"
CMVN = "am.mvn"


def export_dir(cache: Path, weights_digest: str) -> Path:
    return cache / "onnx" / f"sensevoice-{weights_digest}-v{EXPORT_FORMAT}"


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest when the folder is complete and passed its check, else None."""
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("format") != EXPORT_FORMAT or not all(
        (folder / name).is_file() for name in (GRAPH, TOKENS)
    ):
        return None
    return manifest
