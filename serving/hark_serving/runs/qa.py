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
from collections.abc import Callable, Iterable, Sequence
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
from hark_serving.storage.locations import InputRef, OutputLocation, S3Output
from hark_serving.storage.s3 import S3Store
from hark_serving.storage.uris import HARK_DIR, S3Uri, as_prefix, output_name
from hark_serving.transcript.schema import Transcript

log = logging.getLogger(__name__)

REPORT_DIR = HARK_DIR


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
    out: OutputLocation, relatives: Sequence[str]
) -> list[tuple[str, Transcript]]:
    found = []
    for relative in relatives:
        data = out.read_bytes(output_name(relative, "json"))
        if data is None:
            continue
        try:
            found.append((relative, Transcript.model_validate(json.loads(data))))
        except ValueError:
            log.warning("%s: transcript unreadable; left out of the report", relative)
    return found


def write_report(
    out: OutputLocation,
    relatives: Sequence[str],
    *,
    rules: Rules | None = None,
    pattern: MetadataPattern | None = None,
    directory: str = REPORT_DIR,
) -> QaReport:
    """Build the QA report of the current transcripts of `relatives` (input paths relative
    to their root) and write it under `directory` of `out`, linking to each transcript."""
    up = "../" * (directory.strip("/").count("/") + 1)
    items = []
    for relative, transcript in current_transcripts(out, relatives):
        if rules is not None and transcript.call is not None:
            transcript = categorize(rules, transcript)
        items.append((relative, up + output_name(relative, "json"), transcript))
    report = build_report(items, pattern)
    for name, text, content_type in (
        ("calls.csv", render_csv(report), "text/csv"),
        ("report.json", render_json(report), "application/json"),
        ("report.html", render_html(report), "text/html"),
    ):
        out.write(f"{directory}/{name}", text.encode(), content_type + "; charset=utf-8", {})
    return report


def transcript_keys(keys: Iterable[str]) -> list[str]:
    """Output names (relative to the output prefix) → the input paths whose transcripts they are."""
    return sorted(
        k.removesuffix(".json")
        for k in keys
        if k.endswith(".json")
        and not k.endswith(".error.json")
        and not k.startswith(REPORT_DIR + "/")
    )


def write_job_report(
    store: S3Store,
    output_prefix: S3Uri,
    job: str,
    *,
    rules: Rules | None = None,
    pattern: MetadataPattern | None = None,
) -> QaReport:
    """A TranscriptionJob's QA report of every transcript under its output prefix, written to
    `<output prefix>_hark/<job>/` (`job` is `<namespace>.<name>`)."""
    prefix = as_prefix(output_prefix)
    names = (info.key[len(prefix.key) :] for info in store.iter_objects(prefix))
    return write_report(
        S3Output(store, prefix),
        transcript_keys(names),
        rules=rules,
        pattern=pattern,
        directory=f"{REPORT_DIR}/{job}",
    )
