"""Call analytics around a run: categories and alerts per transcript, the QA report per run.

`CallAnalytics.finish` runs on each new transcript before it is written: it fills
`call.categories` from the rules, counts alert matches and posts the webhook.
`write_report` reads the current transcript of every input back from the
destination (so files skipped as current count too) and writes
`_hark/calls.csv`, `_hark/report.json` and `_hark/report.html` beside them.
A TranscriptionJob's report lives under `job_report_prefix` (its whole run, or one
folder per day); `write_entries_report` writes one from entries a job keeps while it
runs, without reading a transcript again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hark_serving.analytics.alerts import Alert, Delivery, WebhookSender, alert_of, count
from hark_serving.analytics.categories import categorize
from hark_serving.analytics.report import (
    CallEntry,
    MetadataPattern,
    QaReport,
    assemble,
    build_report,
    call_entry,
    render_csv,
    render_html,
    render_json,
)
from hark_serving.analytics.rules import Rules
from hark_serving.storage.locations import InputRef, OutputLocation, S3Output
from hark_serving.storage.uris import HARK_DIR, S3Uri, as_prefix, output_name
from hark_serving.transcript.schema import Transcript

if TYPE_CHECKING:  # a store comes from the caller; local paths import no boto3
    from hark_serving.storage.s3 import S3Store

log = logging.getLogger(__name__)

REPORT_DIR = HARK_DIR
ALERTS_DIR = "alerts"


def job_report_prefix(output_prefix: S3Uri, job: str) -> S3Uri:
    """`<output prefix>_hark/<job>/` (`job` is `<namespace>.<name>`): the job's summary,
    its QA reports and its alert outbox."""
    prefix = as_prefix(output_prefix)
    return S3Uri(prefix.bucket, f"{prefix.key}{REPORT_DIR}/{job}/")


def alerts_prefix(output_prefix: S3Uri, job: str) -> S3Uri:
    """The job's alert outbox: `<output prefix>_hark/<job>/alerts/`."""
    base = job_report_prefix(output_prefix, job)
    return S3Uri(base.bucket, f"{base.key}{ALERTS_DIR}/")


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
    up = _way_up(directory)
    items = []
    for relative, transcript in current_transcripts(out, relatives):
        if rules is not None and transcript.call is not None:
            transcript = categorize(rules, transcript)
        items.append((relative, up + output_name(relative, "json"), transcript))
    report = build_report(items, pattern)
    _write_files(out, directory, report)
    return report


def _way_up(directory: str) -> str:
    """From a report folder (relative to the output root) back up to the root."""
    return "../" * (directory.strip("/").count("/") + 1)


def _write_files(out: OutputLocation, directory: str, report: QaReport) -> None:
    for name, text, content_type in (
        ("calls.csv", render_csv(report), "text/csv"),
        ("report.json", render_json(report), "application/json"),
        ("report.html", render_html(report), "text/html"),
    ):
        out.write(f"{directory}/{name}", text.encode(), content_type + "; charset=utf-8", {})


def entry_of_document(
    relative: str,
    doc: dict[str, Any],
    *,
    rules: Rules | None = None,
    pattern: MetadataPattern | None = None,
) -> tuple[CallEntry, str]:
    """A transcript document (as read from its JSON) → its report entry, linking to
    `<relative>.json` from the output root, and its `created_at`; ValueError if unreadable."""
    transcript = Transcript.model_validate(doc)
    if rules is not None and transcript.call is not None:
        transcript = categorize(rules, transcript)
    entry = call_entry(relative, output_name(relative, "json"), transcript, pattern)
    return entry, transcript.created_at


def write_entries_report(
    store: S3Store,
    output_prefix: S3Uri,
    directory: str,
    entries: Iterable[CallEntry],
    pattern: MetadataPattern | None = None,
) -> QaReport:
    """The report of `entries` (as `entry_of_document` makes them), written to `directory`
    (relative to the output prefix) with links relative to it."""
    report = assemble(entries, pattern, link_prefix=_way_up(directory))
    _write_files(S3Output(store, as_prefix(output_prefix)), directory, report)
    return report
