"""The example TranscriptionJobs in deploy/examples/ satisfy the CRD's schema.

Here against the CRD's OpenAPI schema, offline; the integration tests send them
to the real API server too (CEL rules, defaulting).
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from .helpers import CHART, EXAMPLES, crd_json_schemas

CRD = CHART / "crds" / "transcriptionjobs.hark.dev.yaml"


@pytest.fixture(scope="module")
def schema() -> dict[str, object]:
    return crd_json_schemas(CRD)[("TranscriptionJob", "v1alpha1")]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_the_example_satisfies_the_crd_schema(example: Path, schema: dict[str, object]) -> None:
    job = yaml.safe_load(example.read_text())

    jsonschema.Draft7Validator(schema).validate(job)


def test_the_schema_check_refuses_a_misspelt_field(schema: dict[str, object]) -> None:
    job = yaml.safe_load(EXAMPLES[0].read_text())
    job["spec"]["output"]["format"] = ["srt"]

    with pytest.raises(jsonschema.ValidationError, match="'format' was unexpected"):
        jsonschema.Draft7Validator(schema).validate(job)


def test_the_examples_cover_batch_watch_and_split_channels() -> None:
    specs = {p.name: yaml.safe_load(p.read_text())["spec"] for p in EXAMPLES}

    assert {s.get("mode", "Batch") for s in specs.values()} == {"Batch", "Watch"}
    assert any(s.get("options", {}).get("channels") == "split" for s in specs.values())
    assert sorted(specs) == ["batch.yaml", "stereo-call-centre.yaml", "watch-drop-folder.yaml"]
