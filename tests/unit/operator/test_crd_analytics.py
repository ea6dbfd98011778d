"""`analytics` and `options.roles` in the CRD schema and the models, without an API server."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from hark_operator.errors import ManifestError
from hark_operator.resource.crd import apply_defaults, load_manifest, schema_errors, version_schema

BASE = {"input": {"uri": "s3://in-b/calls/"}, "output": {"uri": "s3://out-b/t/"}}
ANALYTICS = {
    "categories": [
        {"name": "long-silence", "alert": True, "all": [{"non_talk": {"min_seconds": 5}}]},
        {
            "name": "angry-at-the-end",
            "all": [
                {"emotion": {"role": "customer", "in": ["ANGRY", "DISGUSTED"], "min_seconds": 3,
                             "window": {"last_percent": 20}}},
                {"keyword": {"role": "agent", "phrases": ["sorry"], "negate": True}},
            ],
        },
    ],
    "metadata": {"pattern": "{date}/{agent}/{call_id}.wav"},
}  # fmt: skip


def job(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "hark.dev/v1alpha1", "kind": "TranscriptionJob", "metadata": {"name": "j"}, "spec": spec}  # fmt: skip


def test_a_job_with_roles_and_analytics_validates_and_reads_into_rules() -> None:
    spec = {
        **BASE,
        "options": {"channels": "split", "roles": ["agent", "customer"]},
        "analytics": ANALYTICS,
    }
    manifest, model = load_manifest(yaml.safe_dump(job(spec)))
    assert manifest["spec"]["analytics"]["categories"][0]["alert"] is True
    assert model.options.transcribe_options().roles == ("agent", "customer")
    assert model.analytics is not None
    rules = model.analytics.rules()
    assert [c.name for c in rules.categories] == ["long-silence", "angry-at-the-end"]
    assert model.analytics.metadata.pattern == "{date}/{agent}/{call_id}.wav"


def test_no_analytics_and_no_roles_by_default() -> None:
    defaulted = apply_defaults(version_schema(), job(BASE))["spec"]
    assert "analytics" not in defaulted and "roles" not in defaulted["options"]
    _, model = load_manifest(yaml.safe_dump(job(BASE)))
    assert model.analytics is None and model.options.transcribe_options().roles is None


@pytest.mark.parametrize(
    ("category", "where"),
    [
        ({"name": "x", "all": [{"emotion": {"in": ["FURIOUS"]}}]}, "spec.analytics.categories[0].all[0].emotion.in[0]"),
        ({"name": "x", "all": [{"event": {"type": "BGM", "min_count": 0}}]}, "spec.analytics.categories[0].all[0].event.min_count"),
        ({"name": "X Y", "all": [{"event": {"type": "BGM"}}]}, "spec.analytics.categories[0].name"),
        ({"name": "x", "any": [{"sentiment": {"below": -2}}]}, "spec.analytics.categories[0].any[0].sentiment.below"),
        ({"name": "x", "all": [{"keyword": {"phrases": []}}]}, "spec.analytics.categories[0].all[0].keyword.phrases"),
        ({"all": [{"event": {"type": "BGM"}}]}, "spec.analytics.categories[0]"),
    ],
)  # fmt: skip
def test_the_schema_rejects_bad_rules_naming_the_field(
    category: dict[str, Any], where: str
) -> None:
    spec = {**BASE, "analytics": {"categories": [category]}}
    errors = schema_errors(apply_defaults(version_schema(), job(spec)))
    assert errors and errors[0].startswith(where), errors


@pytest.mark.parametrize(
    ("category", "message"),
    [
        ({"name": "x", "all": [{"keyword": {"phrases": ["a"], "regex": "a"}}]}, "category 'x': all[0].keyword: give either phrases"),
        ({"name": "x", "all": [{"non_talk": {"min_seconds": 3, "role": "agent"}}]}, "takes no role"),
        ({"name": "x", "all": [{"keyword": {"regex": "("}}]}, "all[0].keyword.regex: not a valid regular expression"),
        (
            {"name": "x", "all": [{"event": {"type": "BGM"}}], "any": [{"event": {"type": "Cry"}}]},
            "category 'x': give either all",
        ),
    ],
)  # fmt: skip
def test_rules_the_schema_cannot_say_are_refused_by_the_model(
    category: dict[str, Any], message: str
) -> None:
    spec = {**BASE, "analytics": {"categories": [category]}}
    with pytest.raises(ManifestError) as caught:
        load_manifest(yaml.safe_dump(job(spec)), source="job.yaml")
    text = str(caught.value)
    assert "spec.analytics.categories" in text and message in text, text


def test_bad_roles_are_refused() -> None:
    spec = {**BASE, "options": {"roles": ["Agent"]}}
    with pytest.raises(ManifestError, match=r"spec\.options\.roles"):
        load_manifest(yaml.safe_dump(job(spec)))
