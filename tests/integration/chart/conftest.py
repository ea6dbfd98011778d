"""The chart against the real API server: CRDs installed, schemas for kubeconform, helm."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.env.environment import Environment
from tests.env.kube import apply_yaml, unique_name
from tests.unit.chart.helpers import CHART, Helm, crd_json_schemas

HARK_CRDS = CHART / "crds"


@pytest.fixture(scope="session")
def chart() -> Path:
    """The checkout's chart, as a user installs it (it has no dependencies to fetch)."""
    return CHART


@pytest.fixture(scope="session")
def helm(test_env: Environment, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(test_env.tools.helm, tmp_path_factory.mktemp("helm-home"), test_env.kubeconfig)


@pytest.fixture(scope="session")
def hark_crds(test_env: Environment) -> Path:
    """The chart's CRDs (TranscriptionJob, kopf peering), installed and established."""
    apply_yaml(test_env, HARK_CRDS)
    test_env.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", HARK_CRDS)
    return HARK_CRDS


@pytest.fixture(scope="session")
def crd_schema_location(test_env: Environment, tmp_path_factory: pytest.TempPathFactory) -> str:
    """kubeconform schemas made here from the CRD files (ours and KubeRay's), as
    `<kind>_<version>.json` (kubeconform lower-cases `.ResourceKind`), independent
    of what the API server has installed."""
    out = tmp_path_factory.mktemp("crd-schemas")
    crd_files = sorted(HARK_CRDS.glob("*.yaml")) + sorted(
        test_env.tools.kuberay_crds.glob("*.yaml")
    )
    for crd_file in crd_files:
        for (kind, version), schema in crd_json_schemas(crd_file).items():
            (out / f"{kind.lower()}_{version}.json").write_text(json.dumps(schema))
    return str(out / "{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json")


@pytest.fixture(scope="module")
def module_namespace(test_env: Environment, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace shared by the tests of one module."""
    name = unique_name(request.module.__name__.rsplit(".", 1)[-1].replace("_", "-"), max_len=40)
    test_env.kubectl("create", "namespace", name)
    yield name
    test_env.kubectl("delete", "namespace", name, "--wait=false", check=False)


def ensure_namespace(env: Environment, name: str) -> None:
    """Create `name` unless it exists (the values files name fixed namespaces)."""
    manifest = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    apply_yaml(env, manifest)
