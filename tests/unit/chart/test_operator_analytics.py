"""The operator's call-analytics settings in the chart: the alert webhook (a URL the platform
chooses, its signing secret from an existing Secret) and the QA report's rewrite interval."""

from __future__ import annotations

from pathlib import Path

from .helpers import Helm, Rendered, render, render_fails

WEBHOOK = {"url": "https://hooks.example.com/hark", "existingSecret": "hark-alerts"}


def test_by_default_the_operator_has_no_webhook_and_rewrites_reports_every_minute(
    defaults: Rendered,
) -> None:
    env = defaults.operator_env()

    assert "HARK_WEBHOOK_URL" not in env and "HARK_WEBHOOK_SECRET" not in env
    assert env["HARK_REPORT_INTERVAL_SECONDS"] == "60"


def test_it_sets_the_webhook_url_and_reads_the_signing_secret_from_the_existing_secret(
    helm: Helm, chart: Path, tmp_path: Path
) -> None:
    rendered = render(
        helm,
        chart,
        values={"operator": {"alerts": {"webhook": WEBHOOK}, "reportIntervalSeconds": 15}},
        tmp=tmp_path,
    )
    env = rendered.operator_env()

    assert env["HARK_WEBHOOK_URL"] == "https://hooks.example.com/hark"
    assert env["HARK_WEBHOOK_SECRET"] == {"secretKeyRef": {"name": "hark-alerts", "key": "secret"}}
    assert env["HARK_REPORT_INTERVAL_SECONDS"] == "15"


def test_it_takes_the_secrets_key_from_secret_key(helm: Helm, chart: Path, tmp_path: Path) -> None:
    webhook = {**WEBHOOK, "secretKey": "hmac"}
    rendered = render(
        helm, chart, values={"operator": {"alerts": {"webhook": webhook}}}, tmp=tmp_path
    )

    assert rendered.operator_env()["HARK_WEBHOOK_SECRET"]["secretKeyRef"]["key"] == "hmac"


def test_it_refuses_a_webhook_url_without_a_secret_to_sign_with(
    helm: Helm, chart: Path, tmp_path: Path
) -> None:
    message = render_fails(
        helm,
        chart,
        {"operator": {"alerts": {"webhook": {"url": "https://hooks.example.com/hark"}}}},
        tmp_path,
    )

    assert "operator.alerts.webhook.url needs operator.alerts.webhook.existingSecret" in message


def test_it_refuses_a_webhook_url_that_is_not_http(helm: Helm, chart: Path, tmp_path: Path) -> None:
    webhook = {**WEBHOOK, "url": "ftp://hooks.example.com/hark"}
    message = render_fails(helm, chart, {"operator": {"alerts": {"webhook": webhook}}}, tmp_path)

    assert "/operator/alerts/webhook/url" in message or "operator.alerts.webhook.url" in message
