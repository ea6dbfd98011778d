"""The TranscriptionJob CRD on the real API server: defaults, validation messages that name
the field, immutability, status pruning, printer columns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hark_operator.resource.models import JobSpec
from tests.env.environment import Environment
from tests.env.kube import apply_yaml

pytestmark = pytest.mark.integration

VALID: dict[str, Any] = {"input": {"uri": "s3://in-b/calls/"}, "output": {"uri": "s3://out-b/t/"}}


def manifest(name: str, spec: dict[str, Any]) -> str:
    return json.dumps(
        {
            "apiVersion": "hark.dev/v1alpha1",
            "kind": "TranscriptionJob",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def test_the_api_server_fills_the_same_defaults_as_the_models(
    test_env: Environment, hark_crds: Path, namespace: str
) -> None:
    apply_yaml(test_env, manifest("defaults", VALID), namespace=namespace)
    stored = json.loads(
        test_env.kubectl("get", "tj", "defaults", "-n", namespace, "-o", "json").stdout
    )["spec"]
    assert JobSpec.model_validate(stored) == JobSpec.model_validate(VALID)
    assert stored["options"] == {"language": "auto", "useItn": True, "timestamps": "segment", "channels": "mix",
                                 "vad": {"maxSegmentSeconds": 30}}  # fmt: skip
    assert (
        stored["mode"] == "Batch"
        and stored["parallelism"] == 4
        and stored["output"]["formats"] == ["json"]
    )
    for short in ("tj", "tjob", "transcriptionjobs.hark.dev"):
        assert "defaults" in test_env.kubectl("get", short, "-n", namespace).stdout


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"input": {"uri": "http://bucket/x/"}}, "spec.input.uri", "should match"),
        ({"input": {"uri": "s3://in-b/a/../b/"}}, "spec.input.uri", "'..' path segments"),
        ({"output": {"uri": "s3://out-b/t"}}, "spec.output.uri", "ending in '/'"),
        (
            {"output": {"uri": "s3://in-b/calls/out/"}},
            "spec.output.uri",
            "must not lie inside input.uri",
        ),
        (
            {"output": {"uri": "s3://out-b/t/", "formats": ["json", "pdf"]}},
            "spec.output.formats[1]",
            "Unsupported value",
        ),
        (
            {"output": {"uri": "s3://out-b/t/", "formats": ["srt", "srt"]}},
            "spec.output.formats",
            "duplicate entries",
        ),
        ({"mode": "Once"}, "spec.mode", "Unsupported value"),
        (
            {"mode": "Watch", "ttlSecondsAfterFinished": 10},
            "spec.ttlSecondsAfterFinished",
            "Batch jobs only",
        ),
        ({"options": {"language": "fr"}}, "spec.options.language", "Unsupported value"),
        ({"options": {"timestamps": "char"}}, "spec.options.timestamps", "Unsupported value"),
        ({"options": {"channels": "left"}}, "spec.options.channels", "Unsupported value"),
        (
            {"options": {"vad": {"maxSegmentSeconds": 90}}},
            "spec.options.vad.maxSegmentSeconds",
            "less than or equal to 60",
        ),
        ({"parallelism": 0}, "spec.parallelism", "greater than or equal to 1"),
        ({"maxAttempts": 50}, "spec.maxAttempts", "less than or equal to 20"),
        ({"pollIntervalSeconds": 0}, "spec.pollIntervalSeconds", "greater than or equal to 1"),
        ({"priority": 5000}, "spec.priority", "less than or equal to 1000"),
        ({"storage": {"profile": "Not_A_Name"}}, "spec.storage.profile", "should match"),
        (
            {"input": {"uri": "s3://in-b/calls/", "include": []}, "suspend": "yes"},
            "spec.suspend",
            "boolean",
        ),
    ],
)
def test_invalid_manifests_are_rejected_naming_the_field(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    change: dict[str, Any],
    field: str,
    words: str,
) -> None:
    result = apply_yaml(
        test_env, manifest("bad", {**VALID, **change}), namespace=namespace, check=False
    )
    assert result.returncode != 0
    assert field in result.stderr and words in result.stderr, result.stderr


def test_input_and_output_are_immutable(
    test_env: Environment, hark_crds: Path, namespace: str
) -> None:
    apply_yaml(test_env, manifest("fixed", VALID), namespace=namespace)
    patch = json.dumps({"spec": {"output": {"uri": "s3://other-b/t/"}}})
    result = test_env.kubectl(
        "patch", "tj", "fixed", "-n", namespace, "--type=merge", "-p", patch, check=False
    )
    assert result.returncode != 0 and "output.uri is immutable" in result.stderr


def test_status_keeps_its_fields_and_kopf_state_and_drops_the_rest(
    test_env: Environment, hark_crds: Path, namespace: str
) -> None:
    apply_yaml(test_env, manifest("st", VALID), namespace=namespace)
    status = {
        "phase": "Running", "progress": "1/2", "counts": {"total": 2, "succeeded": 1},
        "kopf": {"progress": {"job": {"retries": 1}}, "dummy": "x"}, "unknown": 1,
    }  # fmt: skip
    test_env.kubectl("patch", "tj", "st", "-n", namespace, "--subresource=status", "--type=merge",
                     "-p", json.dumps({"status": status}))  # fmt: skip
    stored = json.loads(test_env.kubectl("get", "tj", "st", "-n", namespace, "-o", "json").stdout)[
        "status"
    ]
    assert stored["kopf"] == status["kopf"] and stored["counts"] == status["counts"]
    assert "unknown" not in stored
    header, row = test_env.kubectl("get", "tj", "st", "-n", namespace).stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "DONE", "FAILED", "AGE"]
    assert row.split()[:3] == ["st", "Running", "1/2"]
    wide = (
        test_env.kubectl("get", "tj", "st", "-n", namespace, "-o", "wide")
        .stdout.splitlines()[0]
        .split()
    )
    assert wide == ["NAME", "PHASE", "DONE", "FAILED", "MODE", "INPUT", "AGE"]
