"""A job's summary (`<output prefix>_hark/<namespace>.<job>/summary.json`), as a tally.

Totals come from the `summary` block of each transcript (the `hark.transcript/v1` JSON Schema):
seconds per language and emotion, counts per sound event, files per flag.
A job builds its tally once from the transcripts that exist when it starts
(so a restarted operator rebuilds it from S3) and then adds each transcript
it writes. Failures are listed up to a bound; each has its `.error.json`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hark_operator.resource.models import Counts, JobRef, JobSpec, rfc3339
from hark_serving.storage.uris import HARK_DIR, S3Uri

SUMMARY_SCHEMA = "hark.job-summary/v1"
MAX_LISTED_FAILURES = 1000


def summary_uri(output_prefix: S3Uri, job: JobRef) -> S3Uri:
    return S3Uri(
        output_prefix.bucket,
        f"{output_prefix.key}{HARK_DIR}/{job.namespace}.{job.name}/summary.json",
    )


@dataclass
class SummaryTally:
    files: int = 0
    audio_seconds: float = 0.0
    speech_seconds: float = 0.0
    languages: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    emotions: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    events: Counter[str] = field(default_factory=Counter)
    flags: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, str]] = field(default_factory=list)
    failures_not_listed: int = 0
    version: int = 0  # bumped on every change, to know when to write again

    def add_transcript(self, doc: dict[str, Any]) -> None:
        """Add one hark.transcript/v1 document; tolerant of missing parts."""
        source = doc.get("source") or {}
        summary = doc.get("summary") or {}
        self.files += 1
        self.audio_seconds += float(source.get("duration") or 0.0)
        self.speech_seconds += float(summary.get("speech_seconds") or 0.0)
        for k, v in (summary.get("languages") or {}).items():
            self.languages[str(k)] += float(v)
        for k, v in (summary.get("emotions") or {}).items():
            self.emotions[str(k)] += float(v)
        for k, n in (summary.get("events") or {}).items():
            self.events[str(k)] += int(n)
        for flag in summary.get("flags") or []:
            self.flags[str(flag)] += 1
        self.version += 1

    def add_failure(self, key: str, code: str, message: str) -> None:
        if len(self.failures) < MAX_LISTED_FAILURES:
            self.failures.append({"key": key, "code": code, "message": message[:512]})
        else:
            self.failures_not_listed += 1
        self.version += 1

    def document(
        self,
        job: JobRef,
        spec: JobSpec,
        counts: Counts,
        *,
        phase: str,
        started: datetime | None,
        finished: datetime | None,
        updated: datetime,
    ) -> dict[str, Any]:
        return {
            "schema": SUMMARY_SCHEMA,
            "job": {"namespace": job.namespace, "name": job.name, "uid": job.uid},
            "mode": spec.mode,
            "phase": phase,
            "input": spec.input.uri,
            "output": spec.output.uri,
            "counts": counts.model_dump(by_alias=True),
            "files_summarized": self.files,
            "audio_seconds": round(self.audio_seconds, 3),
            "speech_seconds": round(self.speech_seconds, 3),
            "languages": _rounded(self.languages),
            "emotions": _rounded(self.emotions),
            "events": dict(sorted(self.events.items())),
            "flags": dict(sorted(self.flags.items())),
            "failures": list(self.failures),
            "failures_not_listed": self.failures_not_listed,
            "started_at": rfc3339(started) if started else None,
            "finished_at": rfc3339(finished) if finished else None,
            "updated_at": rfc3339(updated),
        }


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in sorted(values.items())}
