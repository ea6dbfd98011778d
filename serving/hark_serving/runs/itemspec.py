"""The `POST /v1/items` request and response: light models the operator imports too."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hark_serving.analytics.rules import Rules, load_rules
from hark_serving.errors import InvalidOption
from hark_serving.options import OutputFormat, TranscribeOptions


def _json_only() -> list[OutputFormat]:
    return ["json"]


class ItemRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_uri: str = Field(description="s3://bucket/key of one audio object.")
    output_uri: str = Field(
        description="Output base: results go to <output_uri>.json, .srt, .vtt, .txt, .error.json."
    )
    formats: list[OutputFormat] = Field(default_factory=_json_only)
    options: TranscribeOptions = Field(default_factory=TranscribeOptions)
    job: str | None = Field(None, description="namespace/name of the job, for logs and metrics.")
    profile: str | None = Field(None, description="Storage profile; the default one when unset.")
    overwrite: bool = False
    max_segment_seconds: float | None = Field(
        None,
        gt=1,
        le=60,
        description="Split speech longer than this; the worker's setting if unset.",
    )
    attempt: int = Field(1, ge=1, description="1 for the first try; recorded in .error.json.")
    categories: list[dict[str, Any]] | None = Field(
        None, description="Call categories (the rules language) to match before writing."
    )
    alerts_prefix: str | None = Field(
        None,
        description="s3:// prefix (in the output's bucket) of the job's alert outbox: a "
        "transcript that matches alert categories first writes its alert there, as "
        "<prefix><idempotency key>.json, then its outputs; unset: no record.",
    )

    @field_validator("categories")
    @classmethod
    def _rules(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if value is not None:
            try:
                load_rules(value, source="categories")
            except InvalidOption as exc:
                raise ValueError(exc.message) from None
        return value

    def rules(self) -> Rules | None:
        return load_rules(self.categories, source="categories") if self.categories else None


class ItemError(BaseModel):
    code: str
    message: str


class ItemResult(BaseModel):
    status: Literal["succeeded", "skipped", "failed"]
    input_uri: str
    output_uri: str
    etag: str | None = None
    audio_seconds: float = 0.0
    error: ItemError | None = None
    retryable: bool = False
    alerts: list[str] = Field(
        default_factory=list, description="Alert categories the transcript matched."
    )
