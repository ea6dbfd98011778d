"""The chart's monitoring: monitors on the ports the metrics are on, the Grafana
dashboard, the alerting rules, and the metric names they all use."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hark_serving.serve.metrics import CATALOGUE
from tests.env.build import tools_or_fail

from .helpers import CHART, Helm, Rendered, render
from .promql import documented, metric_names, series

ALL_ON = {
    "monitoring": {
        "podMonitor": {"enabled": True},
        "serviceMonitor": {"enabled": True},
        "dashboard": {"enabled": True},
        "prometheusRule": {"enabled": True},
    }
}
ALERTS = {
    "HarkBacklogOld",
    "HarkFailureRateHigh",
    "HarkProcessorUnavailable",
    "HarkGpuFloorAtMax",
    "HarkJobStalled",
}


@pytest.fixture(scope="module")
def monitored(helm: Helm, chart: Path, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return render(helm, chart, values=ALL_ON, tmp=tmp_path_factory.mktemp("values"))


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":  # Grafana's label_values(<series>, <label>)
            query = variable["query"]["query"]
            exprs.append(re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", query))
    return exprs


def rule_exprs(rule: dict[str, Any]) -> dict[str, str]:
    return {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}


# -- the names ------------------------------------------------------------------------


def test_the_metric_names_are_read_from_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(ray_hark_x_bucket{a="b",'
        'c=~"d|e"}[$__rate_interval]))) / on (job) max(hark_y) > 3 and time() - hark_z > 0'
    )
    assert metric_names(expr) == {"ray_hark_x_bucket", "hark_y", "hark_z"}


def test_docs_list_every_metric_the_serve_app_records_and_no_other() -> None:
    docs = documented()
    recorded = {spec.exported[0].removesuffix("_bucket"): spec.kind for spec in CATALOGUE}
    assert {n: k for n, k in docs.items() if n.startswith("ray_hark_")} == recorded


def test_docs_list_every_operator_metric_and_no_other() -> None:
    from prometheus_client import REGISTRY

    import hark_operator.metrics  # noqa: F401  (registers the operator's metrics)

    exported = {
        m.name + ("_total" if m.type == "counter" else ""): m.type
        for m in REGISTRY.collect()
        if m.name.startswith("hark_operator_")
    }
    docs = documented()
    assert {n: k for n, k in docs.items() if n.startswith("hark_operator_")} == exported


# -- the dashboard --------------------------------------------------------------------


def test_the_dashboard_configmap_carries_the_json_and_the_sidecar_label(
    monitored: Rendered,
) -> None:
    (configmap,) = [c for c in monitored.all("ConfigMap") if "hark.json" in c.get("data", {})]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(configmap["data"]["hark.json"])
    assert shipped == json.loads((CHART / "dashboards" / "hark.json").read_text())
    assert shipped["uid"] == "hark-overview" and shipped["panels"]


def test_the_sidecar_label_and_namespace_are_configurable(helm: Helm, chart: Path) -> None:
    values = {
        "monitoring": {
            "dashboard": {
                "enabled": True,
                "labels": {"dashboards": "hark"},
                "namespace": "grafana",
                "annotations": {"grafana_folder": "Hark"},
            }
        }
    }
    (configmap,) = [
        c for c in render(helm, chart, values=values).all("ConfigMap") if "hark.json" in c["data"]
    ]
    meta = configmap["metadata"]
    assert meta["namespace"] == "grafana"
    assert meta["labels"]["dashboards"] == "hark"
    assert meta["annotations"] == {"grafana_folder": "Hark"}


def test_every_dashboard_query_reads_only_documented_metrics() -> None:
    dashboard = json.loads((CHART / "dashboards" / "hark.json").read_text())
    known = series(documented())
    used: set[str] = set()
    for expr in dashboard_exprs(dashboard):
        names = metric_names(expr)
        assert names, expr
        assert names <= known, f"{expr}: {names - known} not in docs/metrics.md"
        used |= names
    # Each panel the issue asks for has its metric.
    for needed in (
        "hark_operator_backlog_items",
        "ray_hark_audio_seconds_processed_total",
        "ray_hark_files_total",
        "ray_hark_http_request_duration_seconds_bucket",
        "ray_hark_model_batch_segments_sum",
        "hark_operator_replicas_current",
        "ray_serve_deployment_replica_healthy",
        "hark_processor_available",
    ):
        assert needed in used, needed


def test_every_panel_has_a_unique_id_and_a_place() -> None:
    dashboard = json.loads((CHART / "dashboards" / "hark.json").read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24 and pos["h"] > 0


# -- the alerts -----------------------------------------------------------------------


def test_the_rule_has_the_five_alerts_on_documented_metrics(monitored: Rendered) -> None:
    rules = rule_exprs(monitored.one("PrometheusRule"))
    assert set(rules) == ALERTS
    known = series(documented())
    for alert, expr in rules.items():
        names = metric_names(expr)
        assert names and names <= known, f"{alert}: {names - known}"
        assert 'namespace="hark"' in expr, f"{alert} is not limited to the release"


def test_the_thresholds_come_from_the_values(helm: Helm, chart: Path) -> None:
    values: dict[str, Any] = {
        "monitoring": {
            "prometheusRule": {
                "enabled": True,
                "backlogAgeSeconds": 120,
                "failureRatio": 0.25,
                "failureWindow": "1h",
                "floorAtMaxFor": "2h",
                "alertLabels": {"team": "speech"},
            }
        }
    }
    rule = render(helm, chart, values=values).one("PrometheusRule")
    by_name = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert by_name["HarkBacklogOld"]["expr"].endswith("> 120")
    assert "[1h]" in by_name["HarkFailureRateHigh"]["expr"]
    assert by_name["HarkFailureRateHigh"]["expr"].endswith("> 0.25")
    assert by_name["HarkGpuFloorAtMax"]["for"] == "2h"
    assert all(r["labels"]["team"] == "speech" for r in by_name.values())


def promtool() -> Path:
    return tools_or_fail().promtool


def test_the_rendered_rules_pass_promtool_check_rules(monitored: Rendered, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": monitored.one("PrometheusRule")["spec"]["groups"]}))
    result = subprocess.run(
        [promtool(), "check", "rules", rules], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_promtool_refuses_a_broken_rule(monitored: Rendered, tmp_path: Path) -> None:
    """The check above is a real check: a broken expression fails it."""
    groups = copy.deepcopy(monitored.one("PrometheusRule")["spec"]["groups"])
    groups[0]["rules"][0]["expr"] = "max by (job (hark_operator_backlog_oldest_seconds)"
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    result = subprocess.run(
        [promtool(), "check", "rules", rules], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "HarkBacklogOld" in result.stderr + result.stdout


# -- where the monitors look ----------------------------------------------------------


def test_the_pod_monitor_scrapes_the_port_ray_exports_metrics_on(helm: Helm, chart: Path) -> None:
    values = {"monitoring": {"rayMetricsPort": 9464, "podMonitor": {"enabled": True}}}
    rendered = render(helm, chart, values=values)
    (endpoint,) = rendered.one("PodMonitor")["spec"]["podMetricsEndpoints"]
    spec = rendered.rayservice()["spec"]["rayClusterConfig"]
    head = spec["headGroupSpec"]
    (workers,) = spec["workerGroupSpecs"]
    for group in (head, workers):
        (container,) = group["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports[endpoint["port"]] == 9464
        assert group["rayStartParams"]["metrics-export-port"] == "9464"
    assert endpoint["path"] == "/metrics"


def _series(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"series": s, "values": v} for s, v in values.items()]


TROUBLE = {
    'hark_operator_backlog_oldest_seconds{namespace="hark",job="hark/a"}': "4000x60",
    'hark_operator_backlog_oldest_seconds{namespace="other",job="other/b"}': "9000x60",
    'ray_hark_files_total{namespace="hark",kind="item",status="failed",replica="r1"}': "0+5x60",
    'ray_hark_files_total{namespace="hark",kind="item",status="succeeded",replica="r1"}': "0+5x60",
    'hark_processor_available{namespace="hark"}': "0x60",
    'hark_operator_replicas_current{namespace="hark"}': "4x60",
    'hark_operator_replicas_max{namespace="hark"}': "4x60",
    'hark_operator_job_last_progress_timestamp_seconds{namespace="hark",job="hark/a"}': "0x60",
    'hark_operator_backlog_items{namespace="hark",job="hark/a"}': "3x60",
}
HEALTHY = {
    'hark_operator_backlog_oldest_seconds{namespace="hark",job="hark/a"}': "60x60",
    'ray_hark_files_total{namespace="hark",kind="item",status="failed",replica="r1"}': "0+0x60",
    'ray_hark_files_total{namespace="hark",kind="item",status="succeeded",replica="r1"}': "0+50x60",
    'hark_processor_available{namespace="hark"}': "1x60",
    'hark_operator_replicas_current{namespace="hark"}': "2x60",
    'hark_operator_replicas_max{namespace="hark"}': "4x60",
    # Progress every minute (Unix time = the test's clock), items still open.
    'hark_operator_job_last_progress_timestamp_seconds{namespace="hark",job="hark/a"}': "0+60x60",
    'hark_operator_backlog_items{namespace="hark",job="hark/a"}': "3x60",
}


def test_each_alert_fires_on_trouble_in_its_namespace_and_not_when_healthy(
    monitored: Rendered, tmp_path: Path
) -> None:
    """`promtool test rules` on made-up series: 40 minutes of trouble, then of health."""
    groups = copy.deepcopy(monitored.one("PrometheusRule")["spec"]["groups"])
    for rule in groups[0]["rules"]:
        rule.pop("annotations")  # promtool would compare the rendered texts too
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    job = {"namespace": "hark", "job": "hark/a"}
    firing = {
        "HarkBacklogOld": [{"severity": "warning", **job}],
        "HarkFailureRateHigh": [{"severity": "warning", "namespace": "hark"}],
        "HarkProcessorUnavailable": [{"severity": "critical", "namespace": "hark"}],
        "HarkGpuFloorAtMax": [{"severity": "warning", "namespace": "hark"}],
        "HarkJobStalled": [{"severity": "warning", **job}],
    }

    def case(series: dict[str, str], alerts: dict[str, list[dict[str, str]]]) -> dict[str, Any]:
        return {
            "interval": "1m",
            "input_series": _series(series),
            "alert_rule_test": [
                {
                    "eval_time": "40m",
                    "alertname": name,
                    "exp_alerts": [{"exp_labels": labels} for labels in alerts.get(name, [])],
                }
                for name in sorted(ALERTS)
            ],
        }

    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [case(TROUBLE, firing), case(HEALTHY, {})],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool(), "test", "rules", "tests.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
