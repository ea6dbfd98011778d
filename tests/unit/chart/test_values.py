"""values.yaml explains itself, and values.schema.json refuses what makes no sense."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from .helpers import CHART, VALUES_FILES, Helm, render, render_fails

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES_TEXT = (CHART / "values.yaml").read_text()
VALUES = yaml.safe_load(VALUES_TEXT)

# Objects whose inside the schema leaves open, each for a stated reason.
OPEN_OBJECTS = {
    # Helm's own global values, shared with subcharts.
    "global",
}
# Kubernetes types passed through verbatim (affinity terms, env sources, ...): the
# schema checks their outer shape; the API server checks the rest in the dry run.
K8S_PASSTHROUGH = re.compile(
    r"(nodeAffinity|podAffinity|podAntiAffinity|secretKeyRef|configMapKeyRef|fieldRef"
    r"|resourceFieldRef|fileKeyRef|seLinuxOptions|appArmorProfile)$"
)

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?P<rest>.*)$")


def documented_keys(text: str) -> dict[str, str]:
    """{dotted.path: description} of every key with a helm-docs `# --` comment above it."""
    docs: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    comment: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped)
            continue
        match = _KEY.match(line)
        if not stripped or not match or stripped.startswith("- "):
            comment = []
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        path = ".".join(key for _, key in stack)
        for i, c in enumerate(comment):
            if c.startswith("# --"):
                rest = [x[1:].strip() for x in comment[i + 1 :] if not x.startswith("# @")]
                docs[path] = " ".join([c[4:].strip(), *rest]).strip()
                break
        comment = []
    return docs


def leaves(values: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the values a user sets: scalars, lists and empty maps."""
    if isinstance(values, dict) and values:
        return [p for k, v in values.items() for p in leaves(v, f"{prefix}{k}.")]
    return [prefix.rstrip(".")]


def object_schemas(node: Any, path: str = "$") -> list[tuple[str, dict[str, Any]]]:
    """Every schema node of type object, with where it is."""
    found = []
    if isinstance(node, dict):
        if node.get("type") == "object":
            found.append((path, node))
        for key, value in node.items():
            found += object_schemas(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += object_schemas(value, f"{path}[{i}]")
    return found


def test_every_value_is_documented_with_a_helm_docs_comment() -> None:
    docs = documented_keys(VALUES_TEXT)

    undocumented = [
        path
        for path in leaves(VALUES)
        if not any(path == d or path.startswith(d + ".") for d in docs)
    ]

    assert undocumented == []
    assert all(len(text) > 10 for text in docs.values()), "descriptions say something"


def test_the_schema_is_draft_7_and_accepts_the_defaults() -> None:
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(SCHEMA)

    jsonschema.Draft7Validator(SCHEMA).validate(VALUES)


def test_the_schema_describes_every_default_value_and_nothing_else() -> None:
    described = set(SCHEMA["properties"])

    assert described - {"global"} == set(VALUES)


def test_every_object_in_the_schema_rejects_unknown_keys() -> None:
    open_objects = [
        path
        for path, node in object_schemas(SCHEMA)
        if node.get("additionalProperties") is not False
        and not isinstance(node.get("additionalProperties"), dict)  # a map with typed values
        and path.removeprefix("$.properties.") not in OPEN_OBJECTS
        and not K8S_PASSTHROUGH.search(path.removesuffix(".allOf[0]"))
    ]

    assert open_objects == []


def merged(base: Any, overlay: Any) -> Any:
    """Values as helm coalesces them: maps merge key by key, anything else replaces."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for key, value in overlay.items():
            out[key] = merged(base.get(key), value) if key in base else value
        return out
    return overlay


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda p: p.name)
def test_the_example_values_files_satisfy_the_schema(values_file: Path) -> None:
    values = merged(VALUES, yaml.safe_load(values_file.read_text()))

    jsonschema.Draft7Validator(SCHEMA).validate(values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"replicaCount": 3}, "additional properties 'replicaCount'", id="unknown-key"),
        pytest.param(
            {"ray": {"workers": {"gpusPerWorker": 1, "maxRepicas": 3}}},
            "additional properties 'maxRepicas'",
            id="misspelt-nested-key",
        ),
        pytest.param(
            {"ray": {"workers": {"maxReplicas": "four"}}},
            "/ray/workers/maxReplicas",
            id="wrong-type",
        ),
        pytest.param(
            {"ray": {"workers": {"minReplicas": -1}}}, "/ray/workers/minReplicas", id="negative"
        ),
        pytest.param(
            {"ray": {"workers": {"maxReplicas": 0}}}, "/ray/workers/maxReplicas", id="zero-max"
        ),
        pytest.param({"operator": {"scaler": "hpa"}}, "/operator/scaler", id="bad-enum"),
        pytest.param({"model": {"hub": "github"}}, "/model/hub", id="bad-hub"),
        pytest.param(
            {"operator": {"watchNamespaces": ["Not_A_Namespace"]}},
            "/operator/watchNamespaces/0",
            id="bad-namespace-name",
        ),
        pytest.param(
            {"storage": {"profiles": {"Bad_Name": {}}}},
            "invalid propertyName 'Bad_Name'",
            id="bad-profile-name",
        ),
        pytest.param(
            {"storage": {"profiles": {"minio": {"secretKey": "x"}}}},
            "additional properties 'secretKey'",
            id="credentials-in-the-wrong-place",
        ),
        pytest.param(
            {"storage": {"profiles": {"open": {"endpointUrl": "http://minio:9000"}}}},
            "/storage/profiles/open",
            id="profile-without-buckets",
        ),
        pytest.param(
            {"storage": {"profiles": {"open": {"readBuckets": []}}}},
            "/storage/profiles/open",
            id="empty-allow-list",
        ),
        pytest.param(
            {"serve": {"args": {"transcriber_min_replicas": 3}}},
            "additional properties 'transcriber_min_replicas'",
            id="arg-the-chart-sets-itself",
        ),
        pytest.param(
            {"serve": {"args": {"batch_frames": 10}}}, "/serve/args/batch_frames", id="arg-range"
        ),
        pytest.param(
            {"serve": {"args": {"precision": "int4"}}},
            "/serve/args/precision",
            id="unknown-precision",
        ),
        pytest.param(
            {"serve": {"ingress": {"minReplicas": 0}}},
            "/serve/ingress/minReplicas",
            id="no-ingress",
        ),
        pytest.param(
            {"operator": {"image": {"digest": "latest"}}}, "/operator/image/digest", id="bad-digest"
        ),
        pytest.param(
            {"ray": {"head": {"rayStartParams": {"num-gpus": "1"}}}},
            "num-gpus",
            id="head-on-gpu",
        ),
        pytest.param(
            {"podDisruptionBudget": {"maxUnavailable": "lots"}},
            "/podDisruptionBudget/maxUnavailable",
            id="bad-int-or-percent",
        ),
        pytest.param(
            {"imagePullSecrets": [{"name": "x"}]}, "/imagePullSecrets/0", id="secret-as-map"
        ),
    ],
)
def test_helm_refuses_nonsense_values_naming_the_value(
    helm: Helm, chart: Path, tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    error = render_fails(helm, chart, values, tmp_path)

    assert "values don't meet the specifications of the schema" in error
    assert message in error


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            {"ray": {"workers": {"minReplicas": 5, "maxReplicas": 2}}},
            "ray.workers.minReplicas (5) must not exceed ray.workers.maxReplicas (2)",
            id="pool-floor-above-ceiling",
        ),
        pytest.param(
            {"serve": {"worker": {"minReplicas": 9, "maxReplicas": 4}}},
            "serve.worker.minReplicas (9) must not exceed serve.worker.maxReplicas (4)",
            id="worker-floor-above-ceiling",
        ),
        pytest.param(
            {"storage": {"defaultProfile": "aws", "profiles": {"minio": {"readBuckets": ["a-b"]}}}},
            'storage.defaultProfile "aws" is not among storage.profiles (minio)',
            id="unknown-default-profile",
        ),
        pytest.param(
            {
                "storage": {
                    "profiles": {
                        "default": {
                            "readBuckets": ["a-b"],
                            "credentials": {"accessKeyId": "AKIA"},
                        }
                    }
                }
            },
            "storage.profiles.default.credentials: set both accessKeyId and secretAccessKey",
            id="half-a-key-pair",
        ),
        pytest.param(
            {"operator": {"serviceAccount": {"create": False}}},
            "operator.serviceAccount.name is required",
            id="no-service-account",
        ),
    ],
)
def test_helm_refuses_values_that_contradict_each_other(
    helm: Helm, chart: Path, tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    error = render_fails(helm, chart, values, tmp_path)

    assert message in error


def test_a_release_name_that_kuberay_would_refuse_is_refused_at_install(
    helm: Helm, chart: Path, tmp_path: Path
) -> None:
    error = render_fails(helm, chart, {}, tmp_path, release="1st")

    assert "must start with a letter" in error


def test_the_serve_args_in_the_schema_are_settings_of_the_serve_app() -> None:
    from hark_serving.serve.settings import ServeSettings

    args_schema = SCHEMA["properties"]["serve"]["properties"]["args"]

    assert args_schema["additionalProperties"] is False
    assert set(args_schema["properties"]) <= set(ServeSettings.model_fields)


def test_the_serve_args_take_every_precision_of_the_settings_and_pass_int8_to_the_app(
    helm: Helm, chart: Path, tmp_path: Path
) -> None:
    from typing import get_args

    from hark_serving.options import Precision
    from hark_serving.serve.settings import load_serve_settings

    precision = SCHEMA["properties"]["serve"]["properties"]["args"]["properties"]["precision"]
    assert precision["enum"] == list(get_args(Precision))

    values = {"serve": {"args": {"device": "cpu", "precision": "int8"}}}
    args = render(helm, chart, values=values, tmp=tmp_path).serve_app()["args"]

    assert args["precision"] == "int8"
    assert load_serve_settings(args).precision == "int8"
