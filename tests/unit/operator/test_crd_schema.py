"""The CRD file as data: the single source, its schema against examples, and the models agreeing with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hark_operator.errors import ManifestError
from hark_operator.resource import models
from hark_operator.resource.crd import (
    CHART_CRD,
    apply_defaults,
    crd_text,
    load_manifest,
    schema_errors,
    version_schema,
)
from hark_operator.resource.models import JobSpec
from hark_serving.storage.uris import DEFAULT_INCLUDE

REPO = Path(__file__).resolve().parents[3]


def job(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "hark.dev/v1alpha1",
        "kind": "TranscriptionJob",
        "metadata": {"name": "j"},
        "spec": spec,
    }


MINIMAL = {"input": {"uri": "s3://in-b/calls/"}, "output": {"uri": "s3://out-b/t/"}}
FULL = {
    "input": {"uri": "s3://in-b/calls/", "include": ["*.wav"], "exclude": ["tmp/*"]},
    "output": {"uri": "s3://out-b/t/", "formats": ["json", "srt", "vtt", "txt"], "overwrite": True},
    "mode": "Watch",
    "pollIntervalSeconds": 5,
    "options": {"language": "zh", "useItn": False, "timestamps": "word", "channels": "split",
                "vad": {"maxSegmentSeconds": 12.5}},
    "storage": {"profile": "minio"},
    "priority": -5,
    "parallelism": 16,
    "maxAttempts": 5,
    "suspend": True,
}  # fmt: skip


def test_the_chart_file_is_the_one_the_package_ships() -> None:
    assert CHART_CRD == REPO / "charts/hark/crds/transcriptionjobs.hark.dev.yaml"
    assert crd_text() == CHART_CRD.read_text()
    link = REPO / "operator/hark_operator/crds/transcriptionjobs.hark.dev.yaml"
    assert link.is_symlink() and link.resolve() == CHART_CRD  # a link, not a copy that could drift


def test_names_scope_columns_and_subresources() -> None:
    doc = yaml.safe_load(CHART_CRD.read_text())
    assert doc["metadata"]["name"] == "transcriptionjobs.hark.dev"
    names = doc["spec"]["names"]
    assert (doc["spec"]["group"], names["kind"], names["plural"]) == (
        "hark.dev",
        "TranscriptionJob",
        "transcriptionjobs",
    )
    assert names["shortNames"] == ["tj", "tjob"]
    (version,) = doc["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = {
        c["name"]: c for c in version["additionalPrinterColumns"] if c.get("priority", 0) == 0
    }
    assert list(columns) == ["Phase", "Done", "Failed", "Age"]
    assert columns["Done"]["jsonPath"] == ".status.progress"
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert status["kopf"]["x-kubernetes-preserve-unknown-fields"] is True


@pytest.mark.parametrize("spec", [MINIMAL, FULL])
def test_examples_validate_and_the_models_read_them(spec: dict[str, Any]) -> None:
    doc = apply_defaults(version_schema(), job(spec))
    assert schema_errors(doc) == []
    JobSpec.model_validate(doc["spec"])


def test_schema_defaults_equal_the_model_defaults() -> None:
    defaulted = apply_defaults(version_schema(), job(MINIMAL))["spec"]
    assert JobSpec.model_validate(defaulted) == JobSpec.model_validate(MINIMAL)
    assert tuple(defaulted["input"]["include"]) == DEFAULT_INCLUDE
    assert defaulted["options"]["vad"] == {"maxSegmentSeconds": 30}
    assert "ttlSecondsAfterFinished" not in defaulted


def test_the_models_repeat_the_crd_rules_word_for_word() -> None:
    text = CHART_CRD.read_text()
    for message in (
        models.TTL_ONLY_FOR_BATCH,
        models.OUTPUT_INSIDE_INPUT,
        models.OUTPUT_NOT_A_PREFIX,
    ):
        assert message in text


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"input": {"uri": "http://x/"}}, "spec.input.uri"),
        ({"output": {"uri": "s3://out-b/t/", "formats": ["pdf"]}}, "spec.output.formats[0]"),
        ({"parallelism": 0}, "spec.parallelism"),
        ({"options": {"language": "fr"}}, "spec.options.language"),
        ({"options": {"vad": {"maxSegmentSeconds": 1}}}, "spec.options.vad.maxSegmentSeconds"),
        ({"priority": "high"}, "spec.priority"),
        ({"storage": {"profile": "UPPER"}}, "spec.storage.profile"),
    ],
)
def test_schema_errors_name_the_field(change: dict[str, Any], where: str) -> None:
    errors = schema_errors(apply_defaults(version_schema(), job({**MINIMAL, **change})))
    assert errors and errors[0].startswith(where + ":"), errors


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"mode": "Watch", "ttlSecondsAfterFinished": 60}, models.TTL_ONLY_FOR_BATCH),
        ({"output": {"uri": "s3://in-b/calls/out/"}}, models.OUTPUT_INSIDE_INPUT),
        ({"output": {"uri": "s3://out-b/t"}}, models.OUTPUT_NOT_A_PREFIX),
        ({"input": {"uri": "s3://in-b/a/../b/"}}, "'..'"),
    ],
)
def test_load_manifest_applies_the_rules_of_the_api_server(
    change: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(yaml.safe_dump(job({**MINIMAL, **change})), "job.yaml")
    assert expected in str(info.value) and "job.yaml is invalid" in str(info.value)


def test_load_manifest_rejects_other_objects_and_missing_names() -> None:
    with pytest.raises(ManifestError, match=r"expected apiVersion hark\.dev/v1alpha1"):
        load_manifest("apiVersion: batch/v1\nkind: Job\nmetadata: {name: x}\n")
    with pytest.raises(ManifestError, match=r"metadata\.name"):
        load_manifest(yaml.safe_dump({**job(MINIMAL), "metadata": {}}))
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_manifest("spec: [")


def test_load_manifest_returns_the_defaulted_manifest() -> None:
    manifest, spec = load_manifest(yaml.safe_dump(job(FULL)))
    assert spec.mode == "Watch" and spec.options.vad.max_segment_seconds == 12.5
    assert spec.formats() == ["json", "srt", "vtt", "txt"]
    assert manifest["spec"]["output"]["overwrite"] is True
