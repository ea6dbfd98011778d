"""What `hark transcribe` does for call analytics: --roles, --categories, --report, webhooks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from hark_serving.analytics.alerts import Alert, Delivery, WebhookSender
from hark_serving.analytics.report import MetadataPattern
from hark_serving.analytics.rules import Rules, parse_rules
from hark_serving.config import Settings
from hark_serving.errors import InvalidOption
from hark_serving.options import TranscribeOptions
from hark_serving.runs.qa import REPORT_DIR, CallAnalytics, write_report
from hark_serving.storage.locations import InputRef, OutputLocation


@dataclass
class RunAnalytics:
    calls: CallAnalytics
    report: bool
    pattern: MetadataPattern | None
    console: Console

    @property
    def wanted(self) -> bool:
        """Whether mono files need a call report too (categories or a QA report asked for)."""
        return self.report or self.calls.rules is not None

    def write_report(self, out: OutputLocation, refs: Sequence[InputRef]) -> None:
        if not self.report:
            return
        relatives = [ref.relative for ref in refs]
        qa = write_report(out, relatives, rules=self.calls.rules, pattern=self.pattern)
        self.console.print(
            f"QA report of {len(qa.rows)} call(s) → {out.uri_for(REPORT_DIR + '/report.html')}",
            highlight=False,
            soft_wrap=True,
        )


def load_rules_file(path: str) -> Rules:
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidOption(
            f"cannot read the categories file: {exc.strerror}; give a YAML file with a "
            "categories list",
            subject=path,
        ) from None
    return parse_rules(text, source=path)


def call_analytics(
    settings: Settings,
    categories: str | None,
    report: bool,
    metadata_pattern: str | None,
    console: Console,
) -> RunAnalytics:
    rules = load_rules_file(categories) if categories else None
    webhook = None
    if settings.webhook_url:
        if rules is None:
            raise InvalidOption(
                "a webhook sends alerts of categories; give --categories too",
                subject="--webhook-url",
            )
        try:
            webhook = WebhookSender(
                settings.webhook_url,
                settings.webhook_secret.get_secret_value() if settings.webhook_secret else "",
            )
        except ValueError as exc:
            raise InvalidOption(str(exc), subject="--webhook-url") from None

    def on_alert(alert: Alert, delivery: Delivery | None) -> None:
        sent = ""
        if delivery is not None:
            sent = (
                " (webhook delivered)"
                if delivery.delivered
                else f" (webhook failed: {delivery.error})"
            )
        console.print(
            f"[yellow]alert[/yellow] {alert.uri}: {', '.join(alert.categories)}{sent}",
            highlight=False,
            soft_wrap=True,
        )

    pattern = MetadataPattern.parse(metadata_pattern) if metadata_pattern else None
    return RunAnalytics(CallAnalytics(rules, webhook, on_alert), report, pattern, console)


def options_of(
    settings: Settings, roles: str | None, non_talk_min_seconds: float, wanted: bool
) -> TranscribeOptions:
    """Per-run options; mono files get a one-role call report when analytics are asked for."""
    try:
        options = TranscribeOptions(
            language=settings.language,
            use_itn=settings.use_itn,
            timestamps=settings.timestamps,
            channels=settings.channels,
            roles=roles,
            non_talk_min_seconds=non_talk_min_seconds,
        )
    except ValueError as exc:
        first = exc.errors()[0] if hasattr(exc, "errors") else None
        message = first["msg"].removeprefix("Value error, ") if first else str(exc)
        field = str(first["loc"][0]).replace("_", "-") if first else "roles"
        raise InvalidOption(message, subject=f"--{field}") from None
    if wanted and options.channels == "mix" and options.roles is None:
        options = options.model_copy(update={"roles": ("speaker",)})
    return options
