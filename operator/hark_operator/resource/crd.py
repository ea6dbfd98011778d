"""The TranscriptionJob CRD as data: its schema, its defaults, and manifest checks.

The CRD file in the chart is the single source. The package ships it as
`hark_operator/crds/transcriptionjobs.hark.dev.yaml`, a link to the chart's
file that the wheel build resolves into a copy; in a checkout both paths are
the same file. `hark run` uses it to default and validate a manifest the way
the API server would (structural defaults, then the OpenAPI schema), before
the models check the CEL rules.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator
from pydantic import ValidationError

from hark_operator.errors import ManifestError
from hark_operator.resource.models import API_VERSION, KIND, VERSION, JobSpec

CRD_FILE = "transcriptionjobs.hark.dev.yaml"
# Where the chart keeps it, for checkouts whose package data is not installed.
CHART_CRD = Path(__file__).resolve().parents[3] / "charts" / "hark" / "crds" / CRD_FILE


def crd_text() -> str:
    packaged = resources.files("hark_operator").joinpath("crds", CRD_FILE)
    if packaged.is_file():
        return packaged.read_text()
    return CHART_CRD.read_text()


@lru_cache(maxsize=1)
def crd() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(crd_text())
    return doc


def version_schema(version: str = VERSION) -> dict[str, Any]:
    for v in crd()["spec"]["versions"]:
        if v["name"] == version:
            schema: dict[str, Any] = v["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(f"the CRD has no version {version}")


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it: fill absent properties that
    have a default, then descend (so `options: {}` gets its children's defaults)."""
    if isinstance(value, dict) and schema.get("type") == "object":
        props: dict[str, Any] = schema.get("properties", {})
        out = dict(value)
        for name, sub in props.items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = apply_defaults(sub, out[name])
        return out
    if isinstance(value, list) and schema.get("type") == "array" and "items" in schema:
        return [apply_defaults(schema["items"], v) for v in value]
    return value


def _path(parts: Iterable[Any]) -> str:
    text = ""
    for p in parts:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text or "<root>"


def schema_errors(manifest: dict[str, Any]) -> list[str]:
    """Every violation of the CRD's OpenAPI schema, each naming its field."""
    validator = Draft4Validator(version_schema())
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.path)))
    return [f"{_path(e.path)}: {e.message}" for e in errors]


def spec_errors(error: ValidationError) -> list[str]:
    out = []
    for err in error.errors():
        loc = _path(["spec", *err["loc"]])
        msg = err["msg"].removeprefix("Value error, ")
        out.append(f"{loc}: {msg}")
    return out


def load_manifest(text: str, source: str = "manifest") -> tuple[dict[str, Any], JobSpec]:
    """Parse one TranscriptionJob; returns (defaulted manifest, spec) or ManifestError."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ManifestError(f"{source}: expected one TranscriptionJob object")
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != KIND:
        raise ManifestError(
            f"{source}: expected apiVersion {API_VERSION} and kind {KIND}, got "
            f"{doc.get('apiVersion')!r} / {doc.get('kind')!r}"
        )
    name = (doc.get("metadata") or {}).get("name")
    if not name:
        raise ManifestError(f"{source}: metadata.name: required")
    defaulted = apply_defaults(version_schema(), doc)
    problems = schema_errors(defaulted)
    if problems:
        raise ManifestError(f"{source} is invalid:\n  " + "\n  ".join(problems))
    try:
        spec = JobSpec.model_validate(defaulted["spec"])
    except ValidationError as exc:
        raise ManifestError(f"{source} is invalid:\n  " + "\n  ".join(spec_errors(exc))) from None
    return defaulted, spec
