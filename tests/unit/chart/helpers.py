"""Render charts/hark with the pinned helm, offline, and look at what comes out.

Shared by the chart's unit tests (rendering only) and integration tests (the
same renderings sent to the real API server).

The chart has no dependencies, so the tests render the checkout's own
`charts/hark`, as a user would, with no network.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "hark"
VALUES_FILES = sorted((REPO / "deploy" / "values").glob("*.yaml"))
EXAMPLES = sorted((REPO / "deploy" / "examples").glob("*.yaml"))

# Kinds whose CRDs (Prometheus Operator) the test environment does not install:
# neither kubeconform nor the API server can check them here, so the tests skip
# them there and check their shape in Python instead.
MONITORING_KINDS = ("PodMonitor", "ServiceMonitor", "PrometheusRule")


class HelmError(AssertionError):
    """helm failed; the message carries what it printed."""


@dataclass
class Helm:
    """The pinned helm binary with its state kept in a private directory."""

    binary: Path
    home: Path
    kubeconfig: Path | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            HELM_CACHE_HOME=str(self.home / "cache"),
            HELM_CONFIG_HOME=str(self.home / "config"),
            HELM_DATA_HOME=str(self.home / "data"),
        )
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.binary), *map(str, args)]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=self.env(), timeout=120, check=False
        )
        if check and proc.returncode != 0:
            raise HelmError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}")
        return proc


@dataclass
class Rendered:
    """The documents of one `helm template` run."""

    text: str
    docs: list[dict[str, Any]]

    def kinds(self) -> list[str]:
        return [d["kind"] for d in self.docs]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def without(self, kinds: Iterable[str]) -> str:
        """The YAML stream without documents of `kinds`."""
        skip = set(kinds)
        return yaml.safe_dump_all([d for d in self.docs if d["kind"] not in skip], sort_keys=False)

    # -- shortcuts into the objects this chart makes ---------------------------

    def rayservice(self) -> dict[str, Any]:
        return self.one("RayService")

    def serve_config(self) -> dict[str, Any]:
        config: dict[str, Any] = yaml.safe_load(self.rayservice()["spec"]["serveConfigV2"])
        return config

    def serve_app(self) -> dict[str, Any]:
        apps = self.serve_config()["applications"]
        assert [a["name"] for a in apps] == ["hark"]
        return dict(apps[0])

    def serve_deployment(self, name: str) -> dict[str, Any]:
        (found,) = [d for d in self.serve_app()["deployments"] if d["name"] == name]
        return dict(found)

    def operator_container(self) -> dict[str, Any]:
        deployment = self.one("Deployment")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        return dict(container)

    def operator_env(self) -> dict[str, Any]:
        return {
            e["name"]: e.get("value", e.get("valueFrom")) for e in self.operator_container()["env"]
        }

    def head_container(self) -> dict[str, Any]:
        spec = self.rayservice()["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
        return dict(spec["containers"][0])

    def worker_group(self) -> dict[str, Any]:
        (group,) = self.rayservice()["spec"]["rayClusterConfig"]["workerGroupSpecs"]
        return dict(group)

    def worker_container(self) -> dict[str, Any]:
        return dict(self.worker_group()["template"]["spec"]["containers"][0])

    def profiles_file(self) -> dict[str, Any]:
        (config,) = [c for c in self.all("ConfigMap") if "storage-profiles.yaml" in c["data"]]
        data: dict[str, Any] = yaml.safe_load(config["data"]["storage-profiles.yaml"])
        return data


def render(
    helm: Helm,
    chart: Path,
    *,
    values_files: Iterable[Path] = (),
    values: Mapping[str, Any] | None = None,
    release: str = "hark",
    namespace: str = "hark",
    tmp: Path | None = None,
) -> Rendered:
    """`helm template` with values files and, on top, `values` (written to a file)."""
    args: list[str | Path] = ["template", release, chart, "--namespace", namespace]
    for path in values_files:
        args += ["--values", path]
    with tempfile.TemporaryDirectory() as scratch:  # never beside the checkout's chart
        if values:
            target = (tmp or Path(scratch)) / f"override-{abs(hash(yaml.safe_dump(values)))}.yaml"
            target.write_text(yaml.safe_dump(dict(values)))
            args += ["--values", target]
        text = helm.run(*args).stdout
    docs = [d for d in yaml.safe_load_all(text) if d]
    return Rendered(text, docs)


def render_fails(
    helm: Helm, chart: Path, values: Mapping[str, Any], tmp: Path, release: str = "hark"
) -> str:
    """Render with `values` that must be refused; return helm's message."""
    target = tmp / "bad-values.yaml"
    target.write_text(yaml.safe_dump(dict(values)))
    proc = helm.run("template", release, chart, "--values", target, check=False)
    assert proc.returncode != 0, f"helm accepted {values}:\n{proc.stdout[:2000]}"
    return proc.stderr


def env_of(container: Mapping[str, Any]) -> dict[str, Any]:
    """A container's env as {name: value or valueFrom}."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# -- CRDs as JSON schemas -------------------------------------------------------------

_OBJECT_META = {"type": "object"}  # the API server checks metadata itself


def _json_schema(node: Any) -> Any:
    """One OpenAPI v3 (structural CRD) schema node as a strict draft-7 JSON schema."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    if node.get("x-kubernetes-int-or-string"):
        return {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    out = {
        k: _json_schema(v)
        for k, v in node.items()
        if not k.startswith("x-kubernetes-") and k not in ("nullable", "format")
    }
    for bound in ("Minimum", "Maximum"):  # OpenAPI 3.0 booleans -> draft-7 numbers
        if out.get(f"exclusive{bound}") is True:
            out[f"exclusive{bound}"] = out.pop(bound.lower())
        elif out.get(f"exclusive{bound}") is False:
            del out[f"exclusive{bound}"]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_json_schemas(crd_file: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """{(kind, version): JSON schema} of every served version of a CRD file.

    Strict like the API server: unknown fields are refused wherever the CRD
    declares properties. CEL rules (x-kubernetes-validations) are left to the
    server-side dry run.
    """
    crd = yaml.safe_load(crd_file.read_text())
    kind = crd["spec"]["names"]["kind"]
    group = crd["spec"]["group"]
    out = {}
    for version in crd["spec"]["versions"]:
        if not version.get("served", True):
            continue
        schema = _json_schema(version["schema"]["openAPIV3Schema"])
        props = schema.setdefault("properties", {})
        props["apiVersion"] = {"enum": [f"{group}/{version['name']}"]}
        props["kind"] = {"enum": [kind]}
        props["metadata"] = _OBJECT_META
        schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind"})
        schema.setdefault("additionalProperties", False)
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
        out[(kind, version["name"])] = schema
    return out
