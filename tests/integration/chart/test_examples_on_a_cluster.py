"""The example TranscriptionJobs in deploy/examples/ pass the real API server's checks
(schema, defaults, CEL rules) once the chart's CRD is installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.env.environment import Environment
from tests.env.kube import apply_yaml
from tests.unit.chart.helpers import EXAMPLES

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_the_example_passes_a_server_side_dry_run(
    test_env: Environment, hark_crds: Path, namespace: str, example: Path
) -> None:
    name = yaml.safe_load(example.read_text())["metadata"]["name"]

    result = apply_yaml(test_env, example, namespace=namespace, dry_run=True)

    assert f"transcriptionjob.hark.dev/{name} serverside-applied (server dry run)" in result.stdout


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_the_server_keeps_what_the_example_says_and_fills_in_defaults(
    test_env: Environment, hark_crds: Path, namespace: str, example: Path
) -> None:
    job = yaml.safe_load(example.read_text())

    stored = json.loads(
        test_env.kubectl(
            "create", "--dry-run=server", "-n", namespace, "-o", "json", "-f", example
        ).stdout
    )

    for key, value in job["spec"].items():
        if isinstance(value, dict):
            assert value.items() <= stored["spec"][key].items(), key
        else:
            assert stored["spec"][key] == value, key
    assert {"options", "storage", "maxAttempts"} <= set(stored["spec"])  # defaulted


def test_the_server_refuses_an_example_with_a_value_outside_the_crd(
    test_env: Environment, hark_crds: Path, namespace: str
) -> None:
    job = yaml.safe_load((EXAMPLES[0].parent / "stereo-call-centre.yaml").read_text())
    job["spec"]["options"]["channels"] = "quad"

    result = apply_yaml(test_env, json.dumps(job), namespace=namespace, dry_run=True, check=False)

    assert result.returncode != 0
    assert "spec.options.channels" in result.stderr
