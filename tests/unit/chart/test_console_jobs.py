"""The chart's side of the console's jobs view: off by default, read-only when on."""

from __future__ import annotations

from pathlib import Path

from .helpers import Helm, Rendered, env_of, render
from .test_rendering import grants

READ_JOBS = {("hark.dev", "transcriptionjobs", verb, "*") for verb in ("get", "list", "watch")}


def console_roles(rendered: Rendered, kind: str) -> list[dict]:  # type: ignore[type-arg]
    return [r for r in rendered.all(kind) if r["metadata"]["name"].endswith("console-jobs")]


def test_off_by_default_the_ray_pods_get_no_token_and_no_role(defaults: Rendered) -> None:
    assert not console_roles(defaults, "Role") and not console_roles(defaults, "ClusterRole")
    spec = defaults.rayservice()["spec"]["rayClusterConfig"]
    assert "serviceAccountName" not in spec["headGroupSpec"]["template"]["spec"]
    assert defaults.worker_group()["template"]["spec"]["automountServiceAccountToken"] is False
    assert "HARK_CONSOLE_JOBS_NAMESPACES" not in env_of(defaults.head_container())


def test_in_listed_namespaces_the_ray_pods_may_only_read_jobs(
    helm: Helm, chart: Path, tmp_path: Path
) -> None:
    values = {"console": {"jobs": {"enabled": True, "namespaces": ["calls", "podcasts"]}}}
    rendered = render(helm, chart, values=values, tmp=tmp_path)
    roles = console_roles(rendered, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["calls", "podcasts"]
    assert all(grants(r) == READ_JOBS for r in roles)
    assert not console_roles(rendered, "ClusterRole")
    bindings = [
        b for b in rendered.all("RoleBinding") if b["roleRef"]["name"].endswith("console-jobs")
    ]
    assert len(bindings) == 2
    for binding in bindings:
        assert {s["name"] for s in binding["subjects"]} == {"hark-ray-head", "hark-ray"}
    head = rendered.rayservice()["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    assert head["serviceAccountName"] == "hark-ray-head"
    assert rendered.one("ServiceAccount", "hark-ray-head")
    assert rendered.worker_group()["template"]["spec"]["automountServiceAccountToken"] is True
    for container in (rendered.head_container(), rendered.worker_container()):
        assert env_of(container)["HARK_CONSOLE_JOBS_NAMESPACES"] == "calls,podcasts"


def test_without_namespaces_it_follows_the_operator_or_reads_the_cluster(
    helm: Helm, chart: Path, tmp_path: Path
) -> None:
    on = {"console": {"jobs": {"enabled": True, "namespaces": []}}}
    cluster = render(helm, chart, values=on, tmp=tmp_path)
    (role,) = console_roles(cluster, "ClusterRole")
    assert grants(role) == READ_JOBS
    binding = next(
        b
        for b in cluster.all("ClusterRoleBinding")
        if b["roleRef"]["name"] == role["metadata"]["name"]
    )
    assert {s["name"] for s in binding["subjects"]} == {"hark-ray-head", "hark-ray"}
    assert env_of(cluster.head_container())["HARK_CONSOLE_JOBS_NAMESPACES"] == "*"

    scoped = render(
        helm, chart, values={**on, "operator": {"watchNamespaces": ["calls"]}}, tmp=tmp_path
    )
    assert [r["metadata"]["namespace"] for r in console_roles(scoped, "Role")] == ["calls"]
    assert not console_roles(scoped, "ClusterRole")
    assert env_of(scoped.head_container())["HARK_CONSOLE_JOBS_NAMESPACES"] == "calls"
