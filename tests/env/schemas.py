"""Offline JSON schemas for kubeconform, exported from the real API server.

kubeconform normally downloads schemas from GitHub, which the build machines cannot
reach. The API server already publishes every schema it enforces (built-in kinds,
the KubeRay CRDs, any CRD a test installed) at ``/openapi/v2``; this converts them
the way openapi2jsonschema does for yannh/kubernetes-json-schema:

- one file per kind, ``<kind><-group-prefix>-<version>.json`` (kubeconform's naming),
  holding the definitions it references ("standalone"),
- int-or-string and Quantity accept numbers too, every typed value may be null,
- strict: objects with declared properties reject unknown fields.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.env.environment import Environment

# kubeconform expands this per manifest (see its pkg/registry/registry.go).
TEMPLATE = "{{ .ResourceKind }}{{ .KindSuffix }}.json"
_REF = "#/definitions/"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING = {"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}


def _convert(node: Any, refs: set[str]) -> Any:
    """Rewrite one OpenAPI v2 schema node into JSON schema; collect referenced names."""
    if isinstance(node, list):
        return [_convert(item, refs) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("format") == "int-or-string" or node.get("x-kubernetes-int-or-string"):
        return dict(_INT_OR_STRING)
    out = {k: _convert(v, refs) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF):
        refs.add(ref[len(_REF) :])
    kind = node.get("type")
    if isinstance(kind, str):
        out["type"] = [kind, "null"]  # YAML `key:` with no value is null
        if (
            kind == "object"
            and "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
    out.pop("format", None)  # kubeconform asserts no formats; keep files small
    return out


def _file_name(group: str, version: str, kind: str) -> str:
    suffix = f"-{version}" if not group else f"-{group.split('.')[0]}-{version}"
    return f"{kind.lower()}{suffix.lower()}.json"


def export_schemas(env: Environment, out_dir: Path) -> str:
    """Write the schemas of every kind the API server serves into ``out_dir``.

    Returns the ``-schema-location`` value to pass to kubeconform.
    """
    spec = json.loads(env.kubectl("get", "--raw", "/openapi/v2", timeout=300).stdout)
    definitions: dict[str, Any] = spec["definitions"]
    converted: dict[str, Any] = {}
    edges: dict[str, set[str]] = {}
    for name, schema in definitions.items():
        refs: set[str] = set()
        if name == _QUANTITY:
            converted[name] = {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}]}
        else:
            converted[name] = _convert(schema, refs)
        edges[name] = refs

    out_dir.mkdir(parents=True, exist_ok=True)
    for name, schema in definitions.items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            closure, todo = set(), [name]
            while todo:  # every definition this kind reaches, for a standalone file
                current = todo.pop()
                if current not in closure and current in converted:
                    closure.add(current)
                    todo.extend(edges[current])
            document = {
                "$schema": "http://json-schema.org/draft-07/schema#",
                **converted[name],
                "definitions": {d: converted[d] for d in sorted(closure)},
            }
            path = out_dir / _file_name(gvk["group"], gvk["version"], gvk["kind"])
            path.write_text(json.dumps(document, separators=(",", ":")))
    return str(out_dir / TEMPLATE)
