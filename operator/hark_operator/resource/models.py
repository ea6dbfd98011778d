"""The TranscriptionJob resource (hark.dev/v1alpha1) as typed models.

The CRD's OpenAPI schema (charts/hark/crds/transcriptionjobs.hark.dev.yaml) is
the contract the API server enforces; these models read what it admitted and
repeat its defaults and its CEL rules (same messages), so `hark run` without
an API server rejects what the API server would. `tests/unit/operator` checks
that the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hark_serving.analytics.rules import Rules, load_rules
from hark_serving.errors import InvalidOption, InvalidUri
from hark_serving.options import (
    Channels,
    Language,
    OutputFormat,
    Timestamps,
    TranscribeOptions,
    parse_roles,
)
from hark_serving.storage.uris import DEFAULT_INCLUDE, S3Uri, as_prefix, parse_s3_uri

GROUP = "hark.dev"
VERSION = "v1alpha1"
PLURAL = "transcriptionjobs"
KIND = "TranscriptionJob"
API_VERSION = f"{GROUP}/{VERSION}"

Mode = Literal["Batch", "Watch"]
Phase = Literal["Pending", "Running", "Watching", "Succeeded", "Failed", "Suspended"]
FINISHED_PHASES: frozenset[str] = frozenset({"Succeeded", "Failed"})

# The CEL rules of the CRD, word for word.
TTL_ONLY_FOR_BATCH = (
    "ttlSecondsAfterFinished applies to Batch jobs only: a Watch job never finishes"
)
OUTPUT_INSIDE_INPUT = "output.uri must not lie inside input.uri: outputs would be listed as inputs"
OUTPUT_NOT_A_PREFIX = "output.uri must be a prefix ending in '/'"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def _s3(value: str) -> str:
    try:
        parse_s3_uri(value)
    except InvalidUri as exc:
        raise ValueError(exc.message) from None
    return value


class InputSpec(_Spec):
    uri: str = Field(max_length=1024)
    include: tuple[str, ...] = Field(DEFAULT_INCLUDE, max_length=64)
    exclude: tuple[str, ...] = Field((), max_length=64)

    _uri = field_validator("uri")(_s3)


class OutputSpec(_Spec):
    uri: str = Field(max_length=1024)
    formats: tuple[OutputFormat, ...] = Field(("json",), max_length=4)
    overwrite: bool = False

    @field_validator("uri")
    @classmethod
    def _prefix(cls, value: str) -> str:
        _s3(value)
        if not value.endswith("/"):
            raise ValueError(OUTPUT_NOT_A_PREFIX)
        return value

    @field_validator("formats")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("formats must not repeat a format")
        return value


class VadOptions(_Spec):
    max_segment_seconds: float = Field(30.0, alias="maxSegmentSeconds", gt=1, le=60)


class JobOptions(_Spec):
    language: Language = "auto"
    use_itn: bool = Field(True, alias="useItn")
    timestamps: Timestamps = "segment"
    channels: Channels = "mix"
    roles: tuple[str, ...] | None = Field(None, max_length=16)
    non_talk_min_seconds: float | None = Field(None, alias="nonTalkMinSeconds", ge=0, le=3600)
    vad: VadOptions = Field(default_factory=VadOptions)

    @field_validator("roles", mode="before")
    @classmethod
    def _roles(cls, value: object) -> tuple[str, ...] | None:
        return parse_roles(value)  # type: ignore[arg-type]

    def transcribe_options(self) -> TranscribeOptions:
        extra: dict[str, Any] = {}
        if self.non_talk_min_seconds is not None:
            extra["non_talk_min_seconds"] = self.non_talk_min_seconds
        return TranscribeOptions(
            language=self.language,
            use_itn=self.use_itn,
            timestamps=self.timestamps,
            channels=self.channels,
            roles=self.roles,
            **extra,
        )


class AnalyticsMetadata(_Spec):
    pattern: str | None = Field(None, max_length=512)


class AnalyticsSpec(_Spec):
    """`analytics`: categories in the rules language (validated by it) and the report's metadata."""

    categories: list[dict[str, Any]] = Field(default_factory=list, max_length=100)
    metadata: AnalyticsMetadata = Field(default_factory=AnalyticsMetadata)

    @field_validator("categories")
    @classmethod
    def _rules(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        try:
            load_rules(value, source="analytics.categories")
        except InvalidOption as exc:
            raise ValueError(exc.message) from None
        return value

    def rules(self) -> Rules:
        return load_rules(self.categories, source="analytics.categories")


class StorageSpec(_Spec):
    profile: str | None = Field(None, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class JobSpec(_Spec):
    input: InputSpec
    output: OutputSpec
    mode: Mode = "Batch"
    poll_interval_seconds: int = Field(30, alias="pollIntervalSeconds", ge=1, le=86400)
    options: JobOptions = Field(default_factory=JobOptions)
    analytics: AnalyticsSpec | None = None
    storage: StorageSpec = Field(default_factory=StorageSpec)
    priority: int = Field(0, ge=-1000, le=1000)
    parallelism: int = Field(4, ge=1, le=1000)
    max_attempts: int = Field(3, alias="maxAttempts", ge=1, le=20)
    max_failed_files: int | None = Field(None, alias="maxFailedFiles", ge=0, le=1_000_000_000)
    suspend: bool = False
    ttl_seconds_after_finished: int | None = Field(
        None, alias="ttlSecondsAfterFinished", ge=0, le=31536000
    )

    @model_validator(mode="after")
    def _rules(self) -> JobSpec:
        if self.mode != "Batch" and self.ttl_seconds_after_finished is not None:
            raise ValueError(TTL_ONLY_FOR_BATCH)
        inside = self.input.uri if self.input.uri.endswith("/") else self.input.uri + "/"
        if self.output.uri.startswith(inside):
            raise ValueError(OUTPUT_INSIDE_INPUT)
        return self

    @property
    def input_uri(self) -> S3Uri:
        return parse_s3_uri(self.input.uri)

    @property
    def output_prefix(self) -> S3Uri:
        return as_prefix(parse_s3_uri(self.output.uri))

    def formats(self) -> list[OutputFormat]:
        """Formats to write, json always among them."""
        return ["json", *(f for f in self.output.formats if f != "json")]


class Counts(_Spec):
    """total = succeeded + failed + in_flight + pending; skipped is a part of succeeded."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    in_flight: int = Field(0, alias="inFlight")
    pending: int = 0


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(_Spec):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""
    last_transition_time: datetime = Field(alias="lastTransitionTime")
    observed_generation: int | None = Field(None, alias="observedGeneration")


class FailureRecord(_Spec):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    key: str
    reason: str
    message: str = ""
    time: datetime | None = None


class JobStatus(_Spec):
    """What the operator reports; `kopf` and unknown fields are kept out of the model."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    phase: Phase | None = None
    progress: str | None = None
    counts: Counts = Field(default_factory=Counts)
    audio_seconds: float = Field(0.0, alias="audioSeconds")
    start_time: datetime | None = Field(None, alias="startTime")
    completion_time: datetime | None = Field(None, alias="completionTime")
    last_scan_time: datetime | None = Field(None, alias="lastScanTime")
    summary_uri: str | None = Field(None, alias="summaryUri")
    observed_generation: int | None = Field(None, alias="observedGeneration")
    conditions: tuple[Condition, ...] = ()
    recent_failures: tuple[FailureRecord, ...] = Field((), alias="recentFailures")

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED_PHASES

    def to_patch(self) -> dict[str, Any]:
        """The status as the API server stores it (camelCase, RFC 3339 times, no nulls)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class JobRef(_Spec):
    """Which job: the key of every per-job structure is `namespace/name`."""

    namespace: str
    name: str
    uid: str | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ObjectRef:
    """Enough of any Kubernetes object to hang an Event on."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str | None = None


def rfc3339(when: datetime) -> str:
    """Kubernetes' time format: UTC, whole seconds, a Z."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
