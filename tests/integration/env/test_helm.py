"""helm renders a chart; the real API server validates the output in a dry run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.env.environment import Environment

pytestmark = pytest.mark.integration

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: smoke\nversion: 0.1.0\nappVersion: '1.0'\n",
    "values.yaml": "replicas: 2\nimage: registry.example/hark:1.0\n",
    "templates/serviceaccount.yaml": """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .Release.Name }}
""",
    "templates/configmap.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  replicas: {{ .Values.replicas | quote }}
""",
    "templates/deployment.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      serviceAccountName: {{ .Release.Name }}
      containers:
        - name: app
          image: {{ .Values.image }}
""",
    "templates/service.yaml": """\
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
spec:
  selector: {app: {{ .Release.Name }}}
  ports: [{port: 80, targetPort: 8000}]
""",
}


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    root = tmp_path / "smoke"
    for rel, text in CHART.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_helm_lint_strict_passes(test_env: Environment, chart: Path) -> None:
    result = test_env.helm("lint", "--strict", chart)
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_template_output_passes_server_side_dry_run(
    test_env: Environment, chart: Path, namespace: str
) -> None:
    rendered = test_env.helm("template", "rel", chart, "--namespace", namespace).stdout

    applied = test_env.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-o", "json", "-f", "-", input=rendered
    )

    items = json.loads(applied.stdout)["items"]
    assert sorted((i["kind"], i["metadata"]["name"]) for i in items) == [
        ("ConfigMap", "rel-config"),
        ("Deployment", "rel"),
        ("Service", "rel"),
        ("ServiceAccount", "rel"),
    ]
    # Defaulting ran on the server, and a ClusterIP came from the service range...
    service = next(i for i in items if i["kind"] == "Service")
    assert service["spec"]["clusterIP"].startswith("10.0.0.")
    # ...but a dry run stores nothing.
    missing = test_env.kubectl("get", "deployment", "rel", "-n", namespace, check=False)
    assert "NotFound" in missing.stderr


def test_kubeconform_validates_the_rendering_offline(
    test_env: Environment, chart: Path, kubeconform_schemas: str
) -> None:
    rendered = test_env.helm("template", "rel", chart).stdout

    result = test_env.kubeconform(
        "-strict", "-summary", "-schema-location", kubeconform_schemas, "-", input=rendered
    )

    assert "Valid: 4, Invalid: 0, Errors: 0, Skipped: 0" in result.stdout


def test_kubeconform_rejects_an_unknown_field(
    test_env: Environment, kubeconform_schemas: str
) -> None:
    manifest = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n"
        "spec:\n  replica: 2\n  selector: {matchLabels: {a: b}}\n"
        "  template:\n    metadata: {labels: {a: b}}\n"
        "    spec: {containers: [{name: c, image: i}]}\n"
    )

    result = test_env.kubeconform(
        "-strict", "-schema-location", kubeconform_schemas, "-", input=manifest, check=False
    )

    assert result.returncode == 1
    assert "replica" in result.stdout
    assert "Deployment x is invalid" in result.stdout


def test_server_dry_run_rejects_an_invalid_rendering(
    test_env: Environment, chart: Path, namespace: str
) -> None:
    rendered = test_env.helm("template", "rel", chart, "--set", "replicas=-1").stdout

    result = test_env.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=rendered, check=False
    )

    assert result.returncode != 0
    assert "spec.replicas" in result.stderr


def test_helm_default_kube_version_matches_the_api_server(
    test_env: Environment, tmp_path: Path
) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: v\nversion: 0.1.0\n")
    (tmp_path / "templates/v.yaml").write_text(
        "# kube: v{{ .Capabilities.KubeVersion.Major }}.{{ .Capabilities.KubeVersion.Minor }}\n"
    )
    server = json.loads(test_env.kubectl("version", "-o", "json").stdout)["serverVersion"]

    rendered = test_env.helm("template", "x", tmp_path)

    assert f"# kube: v{server['major']}.{server['minor']}" in rendered.stdout
