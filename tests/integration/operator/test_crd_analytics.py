"""`analytics` rules on the real API server: good rules are stored, bad ones refused at apply."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hark_operator.resource.models import JobSpec
from tests.env.environment import Environment
from tests.env.kube import apply_yaml
from tests.integration.operator.test_crd import VALID, manifest

pytestmark = pytest.mark.integration

ANALYTICS = {
    "categories": [
        {"name": "long-silence", "alert": True, "all": [{"non_talk": {"min_seconds": 5}}]},
        {
            "name": "angry-at-the-end",
            "all": [
                {"emotion": {"role": "customer", "in": ["ANGRY"], "min_seconds": 3,
                             "window": {"last_percent": 20}}},
                {"keyword": {"role": "agent", "phrases": ["sorry"], "negate": True}},
            ],
        },
    ],
    "metadata": {"pattern": "{date}/{agent}/{call_id}.wav"},
}  # fmt: skip


def test_a_job_with_analytics_and_roles_is_stored_as_the_models_read_it(
    test_env: Environment, hark_crds: Path, namespace: str
) -> None:
    spec = {
        **VALID,
        "options": {"channels": "split", "roles": ["agent", "customer"]},
        "analytics": ANALYTICS,
    }
    apply_yaml(test_env, manifest("qa", spec), namespace=namespace)
    stored = json.loads(test_env.kubectl("get", "tj", "qa", "-n", namespace, "-o", "json").stdout)[
        "spec"
    ]
    assert stored["analytics"]["categories"][1]["alert"] is False  # defaulted
    model = JobSpec.model_validate(stored)
    assert model.analytics is not None and len(model.analytics.rules().categories) == 2
    assert model.options.roles == ("agent", "customer")


def one(filter_: dict[str, Any], **category: Any) -> dict[str, Any]:
    return {"categories": [{"name": "x", "all": [filter_], **category}]}


@pytest.mark.parametrize(
    ("analytics", "field", "words"),
    [
        (one({"emotion": {"in": ["FURIOUS"]}}), "spec.analytics.categories[0].all[0].emotion.in[0]", "Unsupported value"),
        (one({"keyword": {"phrases": ["a"], "regex": "a"}}), "spec.analytics.categories[0].all[0].keyword", "give either phrases"),
        (one({"keyword": {"phrases": ["a"]}, "event": {"type": "BGM"}}), "spec.analytics.categories[0].all[0]", "exactly one of keyword"),
        (one({"non_talk": {"min_seconds": 5, "role": "agent"}}), "spec.analytics.categories[0].all[0].non_talk", "takes no role"),
        (one({"talk_speed": {"role": "agent"}}), "spec.analytics.categories[0].all[0].talk_speed", "give above, below or both"),
        (one({"interruption": {}}), "spec.analytics.categories[0].all[0].interruption", "give min_count, min_seconds or both"),
        (
            one({"keyword": {"phrases": ["a"], "window": {"first_seconds": 5, "last_percent": 10}}}),
            "spec.analytics.categories[0].all[0].keyword.window",
            "give exactly one of first_seconds",
        ),
        (
            one({"keyword": {"phrases": ["a"], "window": {"from_percent": 60, "to_percent": 10}}}),
            "spec.analytics.categories[0].all[0].keyword.window",
            "from_percent must be below to_percent",
        ),
        (one({"event": {"type": "BGM"}}, any=[{"event": {"type": "Cry"}}]), "spec.analytics.categories[0]", "give either all"),
        (
            {"categories": [{"name": "x", "all": [{"event": {"type": "BGM"}}]}] * 2},
            "spec.analytics.categories",
            'duplicate entries for key [name="x"]',
        ),
    ],
)  # fmt: skip
def test_bad_rules_are_refused_at_apply_naming_the_field(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    analytics: dict[str, Any],
    field: str,
    words: str,
) -> None:
    result = apply_yaml(
        test_env,
        manifest("bad", {**VALID, "analytics": analytics}),
        namespace=namespace,
        check=False,
    )
    assert result.returncode != 0
    assert field in result.stderr and words in result.stderr, result.stderr


def test_duplicate_roles_are_refused_at_apply(
    test_env: Environment, hark_crds: Path, namespace: str
) -> None:
    spec = {**VALID, "options": {"roles": ["agent", "agent"]}}
    result = apply_yaml(test_env, manifest("bad", spec), namespace=namespace, check=False)
    assert result.returncode != 0, result.stderr
    assert 'spec.options.roles: duplicate entries for key [="agent"]' in result.stderr
