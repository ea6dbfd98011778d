"""Call analytics around a run: categories and alerts per transcript, the QA report per run.

`CallAnalytics.finish` runs on each new transcript before it is written: it fills
`call.categories` from the rules, counts alert matches and posts the webhook.
`write_report` reads the current transcript of every input back from the
destination (so files skipped as current count too) and writes
`_hark/calls.csv`, `_hark/report.json` and `_hark/report.html` beside them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hark_serving.analytics.alerts import Alert, Delivery, WebhookSender, alert_of, count
from hark_serving.analytics.categories import categorize
from hark_serving.analytics.report import (
    MetadataPattern,
    QaReport,
    build_report,
    render_csv,
    render_html,
    render_json,
)
from hark_serving.analytics.rules import Rules
from hark_serving.storage.locations import InputRef, OutputLocation
from hark_serving.storage.uris import output_name
from hark_serving.transcript.schema import Transcript

log = logging.getLogger(__name__)

REPORT_DIR = "_hark"


@dataclass
class CallAnalytics:
    rules: Rules | None = None
    webhook: WebhookSender | None = None
    on_alert: Callable[[Alert, Delivery | None], None] | None = None
    alerts: list[Alert] = field(default_factory=list)

    def finish(self, out: OutputLocation, ref: InputRef, transcript: Transcript) -> Transcript:
        if self.rules is None or transcript.call is None:
            return transcript
        transcript = categorize(self.rules, transcript)
        alert = alert_of(transcript, out.uri_for(output_name(ref.relative, "json")))
        if alert is not None:
            self.alerts.append(alert)
            count(alert)
            delivery = self.webhook.send(alert) if self.webhook else None
            if delivery is not None and not delivery.delivered:
                log.warning("webhook for %s not delivered: %s", alert.uri, delivery.error)
            if self.on_alert is not None:
                self.on_alert(alert, delivery)
        return transcript


def current_transcripts(
    out: OutputLocation, refs: Sequence[InputRef]
) -> list[tuple[InputRef, Transcript]]:
    found = []
    for ref in refs:
        data = out.read_bytes(output_name(ref.relative, "json"))
        if data is None:
            continue
        try:
            found.append((ref, Transcript.model_validate(json.loads(data))))
        except ValueError:
            log.warning("%s: transcript unreadable; left out of the report", ref.uri)
    return found


def write_report(
    out: OutputLocation,
    refs: Sequence[InputRef],
    *,
    rules: Rules | None = None,
    pattern: MetadataPattern | None = None,
) -> QaReport:
    """Build the QA report of every input's current transcript and write it under `_hark/`."""
    items = []
    for ref, transcript in current_transcripts(out, refs):
        if rules is not None and transcript.call is not None:
            transcript = categorize(rules, transcript)
        link = "../" + output_name(ref.relative, "json")
        items.append((ref.relative, link, transcript))
    report = build_report(items, pattern)
    for name, text, content_type in (
        ("calls.csv", render_csv(report), "text/csv"),
        ("report.json", render_json(report), "application/json"),
        ("report.html", render_html(report), "text/html"),
    ):
        out.write(f"{REPORT_DIR}/{name}", text.encode(), content_type + "; charset=utf-8", {})
    return report
