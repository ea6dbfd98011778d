"""The chart renders closed and wired by default: optional resources, network policies,
the example Ingress, monitors, the disruption budget, the notes and the `helm test` hook."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import REPO, Helm, Rendered, render, render_fails


def test_optional_resources_are_off_by_default_and_security_is_on(defaults: Rendered) -> None:
    assert sorted(defaults.kinds()) == sorted(
        [
            "ClusterKopfPeering",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "NetworkPolicy",
            "Pod",  # the `helm test` hook: created only by `helm test`
            "RayService",
            "Role",
            "RoleBinding",
            "Secret",
            "Service",
            "ServiceAccount",
            "ServiceAccount",
        ]
    )


def test_by_default_the_network_policies_admit_only_what_each_port_needs(
    defaults: Rendered,
) -> None:
    policy = defaults.one("NetworkPolicy", "hark-ray")
    ray_pods = {"podSelector": policy["spec"]["podSelector"]}
    operator_peer = {
        "podSelector": {
            "matchLabels": defaults.one("Deployment")["spec"]["selector"]["matchLabels"]
        }
    }
    rules = policy["spec"]["ingress"]
    by_port = {rule["ports"][0]["port"]: rule["from"] for rule in rules if "ports" in rule}
    everything_from = [rule["from"] for rule in rules if "ports" not in rule]
    # GCS (6379), client (10001) and every other Ray port: Ray pods only.
    assert everything_from == [[ray_pods]]
    assert all("from" in rule and rule["from"] for rule in rules)  # no rule open to all
    assert set(by_port) == {8000, 8265, 8080}
    kuberay = [p for p in by_port[8265] if "kuberay-operator" in str(p)]
    assert by_port[8265] == [operator_peer, *kuberay]
    helm_test = {"podSelector": {"matchLabels": defaults.one("Pod")["metadata"]["labels"]}}
    helm_test["podSelector"]["matchLabels"] = {
        k: v
        for k, v in helm_test["podSelector"]["matchLabels"].items()
        if k
        in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component")
    }
    # No other client until configured; the `helm test` pod may ask /healthz.
    assert by_port[8000] == [operator_peer, helm_test, *kuberay]
    monitoring = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    }
    assert by_port[8080] == [monitoring]
    operator_policy = defaults.one("NetworkPolicy", "hark-operator")
    assert [r["from"] for r in operator_policy["spec"]["ingress"]] == [[monitoring]]


def test_the_example_ingress_exposes_only_the_transcription_routes(
    helm: Helm, chart: Path, tmp_path: Path
) -> None:
    rendered = render(
        helm, chart, values={"serve": {"ingressResource": {"enabled": True}}}, tmp=tmp_path
    )
    (rule,) = rendered.one("Ingress")["spec"]["rules"]
    paths = {(p["path"], p["pathType"]) for p in rule["http"]["paths"]}
    assert paths == {
        ("/v1/transcribe", "Exact"),
        ("/v1/audio/transcriptions", "Exact"),
        ("/healthz", "Exact"),
    }


@pytest.mark.parametrize("path", ["/", "/v1", "/v1/items", "/metrics"])
def test_an_ingress_path_that_would_publish_items_or_metrics_is_refused(
    helm: Helm, chart: Path, tmp_path: Path, path: str
) -> None:
    hosts = [{"host": "h.example.com", "paths": [{"path": path, "pathType": "Prefix"}]}]
    values = {"serve": {"ingressResource": {"enabled": True, "hosts": hosts}}}
    error = render_fails(helm, chart, values, tmp_path)
    assert f'the path "{path}" would make /v1/items or /metrics public' in error


def test_the_monitors_scrape_ports_the_pods_have(helm: Helm, chart: Path) -> None:
    rendered = render(helm, chart, values_files=[REPO / "deploy/values/gpu-pool.yaml"])
    pod_monitor = rendered.one("PodMonitor")
    service_monitor = rendered.one("ServiceMonitor")
    metrics_service = rendered.one("Service", "hark-operator-metrics")
    operator_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    worker_labels = rendered.worker_group()["template"]["metadata"]["labels"]

    assert pod_monitor["apiVersion"] == service_monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert pod_monitor["spec"]["selector"]["matchLabels"].items() <= worker_labels.items()
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert {"name": "metrics", "containerPort": 8080} in rendered.worker_container()["ports"]
    assert pod_monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert (
        service_monitor["spec"]["selector"]["matchLabels"].items()
        <= metrics_service["metadata"]["labels"].items()
    )
    assert metrics_service["spec"]["selector"].items() <= operator_labels.items()
    assert (
        service_monitor["spec"]["endpoints"][0]["port"]
        == metrics_service["spec"]["ports"][0]["name"]
    )


def test_the_network_policy_lets_kuberay_reach_the_dashboard_and_the_operator_the_api(
    helm: Helm, chart: Path
) -> None:
    rendered = render(helm, chart, values_files=[REPO / "deploy/values/gpu-pool.yaml"])
    policy = rendered.one("NetworkPolicy", "hark-ray")
    by_port = {
        rule["ports"][0]["port"]: rule.get("from")
        for rule in policy["spec"]["ingress"]
        if "ports" in rule
    }
    operator_peer = {
        "podSelector": {
            "matchLabels": rendered.one("Deployment")["spec"]["selector"]["matchLabels"]
        }
    }

    assert operator_peer in by_port[8000]
    assert operator_peer in by_port[8265]
    assert any("kuberay-operator" in str(peer) for peer in by_port[8265])
    assert any("kuberay-operator" in str(peer) for peer in by_port[8000])
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= (
        rendered.worker_group()["template"]["metadata"]["labels"].items()
    )


def test_the_disruption_budget_covers_only_the_worker_pods(helm: Helm, chart: Path) -> None:
    rendered = render(helm, chart, values_files=[REPO / "deploy/values/gpu-pool.yaml"])
    selector = rendered.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    head_labels = rendered.rayservice()["spec"]["rayClusterConfig"]["headGroupSpec"]["template"][
        "metadata"
    ]["labels"]

    assert selector.items() <= rendered.worker_group()["template"]["metadata"]["labels"].items()
    assert not selector.items() <= head_labels.items()


def test_the_ingress_routes_to_the_http_service(helm: Helm, chart: Path) -> None:
    rendered = render(helm, chart, values_files=[REPO / "deploy/values/gpu-pool.yaml"])
    (rule,) = rendered.one("Ingress")["spec"]["rules"]

    assert rule["host"] == "hark.internal.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": "hark-serve",
        "port": {"name": "http"},
    }


def test_the_notes_say_how_to_submit_a_job_watch_it_and_call_the_endpoint(
    helm: Helm, chart: Path, tmp_path: Path
) -> None:
    # `helm template` leaves NOTES.txt out; render it as a template file instead.
    notes_chart = tmp_path / "hark"
    import shutil

    shutil.copytree(chart, notes_chart)
    (notes_chart / "templates" / "notes.yaml").write_text(
        '# {{ include (print $.Template.BasePath "/NOTES.txt") . | replace "\\n" "\\n# " }}\n'
    )

    text = helm.run(
        "template",
        "hark",
        notes_chart,
        "--namespace",
        "hark",
        "--show-only",
        "templates/notes.yaml",
    ).stdout

    assert "kind: TranscriptionJob" in text
    assert "kubectl get tj" in text
    assert "port-forward svc/hark-serve 8000:8000" in text
    assert "/v1/transcribe" in text


def test_helm_test_asks_the_serve_apps_healthz_through_its_service(defaults: Rendered) -> None:
    pod = defaults.one("Pod")
    service = defaults.one("Service", "hark-serve")
    (container,) = pod["spec"]["containers"]
    port = service["spec"]["ports"][0]["port"]

    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert container["image"] == defaults.operator_container()["image"]  # nothing else to pull
    assert f'"http://hark-serve.hark.svc:{port}/healthz"' in container["args"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_helm_test_pod_can_be_left_out(helm: Helm, chart: Path, tmp_path: Path) -> None:
    rendered = render(helm, chart, values={"helmTest": {"enabled": False}}, tmp=tmp_path)

    assert "Pod" not in rendered.kinds()
