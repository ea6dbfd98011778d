"""The `hark.transcript/v1` result (docs/contracts.md §6) as typed models, and its JSON Schema.

The JSON Schema in `schemas/transcript.v1.json` (beside this module) is the published contract; the
models below build results and `validate_result` checks every document against
the file before it is written, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hark_serving.transcript.call import Call

SCHEMA_ID = "hark.transcript/v1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Source(_Model):
    uri: str
    etag: str | None = None
    bytes: int | None = None
    format: str
    duration: float = Field(description="Seconds of decoded audio.")
    sample_rate: int = Field(description="Sample rate of the source stream, before resampling.")
    channels: int


class ModelInfo(_Model):
    name: str = "SenseVoiceSmall"
    source: str
    device: str
    dtype: str
    runtime: str | None = Field(
        None,
        description="What ran the model: torch or onnxruntime (absent in transcripts made "
        "before it was recorded).",
    )


class ResultOptions(_Model):
    language: str
    use_itn: bool
    timestamps: Literal["segment", "word"]
    channels: Literal["mix", "split"] = "mix"


class Word(_Model):
    text: str
    start: float
    end: float


class Segment(_Model):
    id: int
    start: float
    end: float
    channel: int | None = None
    role: str | None = Field(None, description="The channel's role (agent, customer) when known.")
    language: str | None = None
    emotion: str | None = None
    events: list[str] = Field(default_factory=list)
    text: str
    raw: str
    words: list[Word] | None = None


class Summary(_Model):
    speech_seconds: float = 0.0
    languages: dict[str, float] = Field(default_factory=dict)
    emotions: dict[str, float] = Field(default_factory=dict)
    events: dict[str, int] = Field(default_factory=dict)
    flags: list[str] = Field(default_factory=list)


class Timing(_Model):
    decode_s: float = 0.0
    vad_s: float = 0.0
    asr_s: float = 0.0
    rtf: float = 0.0


class Transcript(_Model):
    schema_: Literal["hark.transcript/v1"] = Field("hark.transcript/v1", alias="schema")
    source: Source
    model: ModelInfo
    options: ResultOptions
    language: str | None = None
    text: str
    segments: list[Segment]
    summary: Summary
    timing: Timing
    call: Call | None = Field(None, description="The call report (channels=split, or roles set).")
    created_at: str = Field(default_factory=lambda: utc_now())

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=False)

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), ensure_ascii=False, indent=2) + "\n"


def utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@lru_cache(maxsize=1)
def json_schema() -> dict[str, Any]:
    """The shipped JSON Schema of `hark.transcript/v1`."""
    text = (
        resources.files("hark_serving.transcript")
        .joinpath("schemas/transcript.v1.json")
        .read_text()
    )
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@lru_cache(maxsize=1)
def validator() -> Any:
    """The compiled validator of the schema (built once; `hark transcribe` builds it while
    the model loads)."""
    import jsonschema

    # The file itself is checked against the draft's meta-schema by the tests
    # (tests/unit/engine/test_schema.py), not at every start: that check cost
    # 0.15-0.25 s of a short run.
    return jsonschema.Draft202012Validator(json_schema())


def validate_result(document: dict[str, Any]) -> None:
    """Raise `ValueError` naming the first offending path if `document` breaks the schema."""
    errors = sorted(validator().iter_errors(document), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "(root)"
        raise ValueError(f"result does not match {SCHEMA_ID} at {where}: {first.message}")
