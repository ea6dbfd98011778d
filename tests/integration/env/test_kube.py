"""The API server is real: CRDs with OpenAPI schemas are enforced, watches stream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.env.environment import Environment
from tests.env.kube import apply_yaml

pytestmark = pytest.mark.integration

GROUP, VERSION, PLURAL = "smoke.hark.test", "v1", "widgets"

WIDGET_CRD = f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {PLURAL}.{GROUP}
spec:
  group: {GROUP}
  scope: Namespaced
  names: {{plural: {PLURAL}, singular: widget, kind: Widget, listKind: WidgetList}}
  versions:
    - name: {VERSION}
      served: true
      storage: true
      subresources: {{status: {{}}}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [replicas]
              properties:
                replicas: {{type: integer, minimum: 1, maximum: 10}}
                color: {{type: string, enum: [red, green]}}
            status:
              type: object
              properties:
                ready: {{type: integer}}
"""


def widget(name: str, replicas: Any, color: str = "red") -> str:
    return json.dumps(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "color": color},
        }
    )


@pytest.fixture(scope="module")
def widget_crd(test_env: Environment) -> Iterator[str]:
    apply_yaml(test_env, WIDGET_CRD)
    test_env.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", f"crd/{PLURAL}.{GROUP}"
    )
    yield f"{PLURAL}.{GROUP}"


def test_custom_object_is_stored_and_read_back(
    test_env: Environment, namespace: str, widget_crd: str
) -> None:
    test_env.kubectl("apply", "-n", namespace, "-f", "-", input=widget("w1", 3))

    got = json.loads(
        test_env.kubectl("get", widget_crd, "w1", "-n", namespace, "-o", "json").stdout
    )

    assert got["spec"] == {"replicas": 3, "color": "red"}
    assert got["metadata"]["namespace"] == namespace
    assert got["metadata"]["uid"]


def test_namespace_exists_and_is_active(test_env: Environment, namespace: str) -> None:
    phase = test_env.kubectl("get", "namespace", namespace, "-o", "jsonpath={.status.phase}")
    assert phase.stdout == "Active"


@pytest.mark.parametrize(
    ("replicas", "color", "field", "reason"),
    [
        (0, "red", "spec.replicas", "should be greater than or equal to 1"),
        ("many", "red", "spec.replicas", 'must be of type integer: "string"'),
        (2, "blue", "spec.color", 'Unsupported value: "blue"'),
    ],
)
def test_schema_violation_is_rejected_naming_the_field(
    test_env: Environment,
    namespace: str,
    widget_crd: str,
    replicas: Any,
    color: str,
    field: str,
    reason: str,
) -> None:
    result = test_env.kubectl(
        "apply", "-n", namespace, "-f", "-", input=widget("bad", replicas, color), check=False
    )

    assert result.returncode != 0
    assert field in result.stderr
    assert reason in result.stderr
    missing = test_env.kubectl("get", widget_crd, "bad", "-n", namespace, check=False)
    assert "NotFound" in missing.stderr


def test_watch_streams_added_then_modified(kube_api: Any, namespace: str, widget_crd: str) -> None:
    from kubernetes import client, watch

    objects = client.CustomObjectsApi(kube_api)
    start = objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    body = json.loads(widget("watched", 1))
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    objects.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "watched", {"spec": {"replicas": 7}}
    )

    seen: list[tuple[str, int]] = []
    stream = watch.Watch()
    # Watching from the list's resourceVersion replays exactly what happened after it.
    for event in stream.stream(
        objects.list_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        resource_version=start["metadata"]["resourceVersion"],
        timeout_seconds=30,
    ):
        seen.append((event["type"], event["object"]["spec"]["replicas"]))
        if len(seen) == 2:
            stream.stop()

    assert seen == [("ADDED", 1), ("MODIFIED", 7)]


def test_status_subresource_ignores_spec_changes(
    kube_api: Any, namespace: str, widget_crd: str
) -> None:
    from kubernetes import client

    objects = client.CustomObjectsApi(kube_api)
    objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, json.loads(widget("st", 2))
    )

    # Through /status only status is written; the spec change in the same patch is dropped.
    objects.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "st", {"status": {"ready": 2}, "spec": {"replicas": 9}}
    )
    got = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "st")

    assert got["status"] == {"ready": 2}
    assert got["spec"]["replicas"] == 2
