"""The operator's credential for /v1/items: from a variable or a mounted file, never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from hark_operator.settings import load_operator_settings
from hark_serving.errors import ConfigError


def test_the_items_token_comes_from_a_file_and_never_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "itemsToken"
    token.write_text("operator-secret-value\n")
    monkeypatch.setenv("HARK_ITEMS_TOKEN_FILE", str(token))
    settings = load_operator_settings()
    assert settings.items_token_value() == "operator-secret-value"
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert "operator-secret-value" not in text
    monkeypatch.delenv("HARK_ITEMS_TOKEN_FILE")
    inline = load_operator_settings(items_token="inline-secret-value")
    assert inline.items_token_value() == "inline-secret-value"
    assert "inline-secret-value" not in repr(inline)


def test_an_unreadable_token_file_or_both_sources_are_refused(tmp_path: Path) -> None:
    missing = load_operator_settings(items_token_file=tmp_path / "absent")
    with pytest.raises(ConfigError, match=r"HARK_ITEMS_TOKEN_FILE=.* cannot read"):
        missing.items_token_value()
    (tmp_path / "t").write_text("x")
    with pytest.raises(ConfigError, match="not both"):
        load_operator_settings(items_token="x", items_token_file=tmp_path / "t")


def test_the_alert_webhook_takes_the_data_planes_names_and_never_shows_its_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HARK_WEBHOOK_URL", "https://hooks.example.com/hark")
    monkeypatch.setenv("HARK_WEBHOOK_SECRET", "webhook-secret-value")
    monkeypatch.setenv("HARK_REPORT_INTERVAL_SECONDS", "15")
    settings = load_operator_settings()
    assert settings.webhook_url == "https://hooks.example.com/hark"
    assert settings.webhook_secret_value() == "webhook-secret-value"
    assert settings.report_interval_seconds == 15.0
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert "webhook-secret-value" not in text
    defaults = load_operator_settings(webhook_url="", webhook_secret="")
    assert defaults.report_interval_seconds == 15.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"webhook_url": "https://hooks.example.com/hark"}, "HARK_WEBHOOK_URL needs HARK_WEBHOOK_SECRET"),
        ({"webhook_url": "ftp://hooks", "webhook_secret": "s"}, r"HARK_WEBHOOK_URL='ftp://hooks'"),
        ({"report_interval_seconds": 0}, r"HARK_REPORT_INTERVAL_SECONDS=0"),
    ],
)  # fmt: skip
def test_bad_webhook_and_report_settings_are_refused_naming_the_variable(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_operator_settings(**overrides)
