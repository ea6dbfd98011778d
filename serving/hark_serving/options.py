"""What a caller may ask of one transcription: the options every transport shares."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Language = Literal["auto", "zh", "en", "yue", "ja", "ko"]
Timestamps = Literal["segment", "word"]
Channels = Literal["mix", "split"]
OutputFormat = Literal["json", "srt", "vtt", "txt"]
# Engine choices, shared by the settings object and the CLI flags that override it.
Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "float32", "float16", "bfloat16", "int8"]
Runtime = Literal["auto", "torch", "onnx"]
Vad = Literal["silero", "fsmn", "none"]
Segments = Literal["auto", "speech", "recipe"]

LANGUAGES: tuple[str, ...] = ("auto", "zh", "en", "yue", "ja", "ko")
OUTPUT_FORMATS: tuple[str, ...] = ("json", "srt", "vtt", "txt")
ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class TranscribeOptions(BaseModel):
    """Per-request decoding options (the `options` block of a result)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    language: Language = Field("auto", description="Spoken language, or auto to detect.")
    use_itn: bool = Field(True, description="Inverse text normalisation: digits, punctuation.")
    timestamps: Timestamps = Field("segment", description="Segment times, or per-word times too.")
    channels: Channels = Field(
        "mix", description="mix: one transcript of all channels; split: one per channel."
    )

    roles: tuple[str, ...] | None = Field(
        None,
        description="Role of each channel in order (split), or of the one speaker (mix); "
        "with split the default is agent,customer. Setting it on mix adds a call report.",
    )
    non_talk_min_seconds: float = Field(
        2.0, ge=0, le=3600, description="Shortest silence the call report lists as non-talk."
    )

    @field_validator("roles", mode="before")
    @classmethod
    def _roles(cls, value: object) -> tuple[str, ...] | None:
        return parse_roles(value)  # type: ignore[arg-type]

    def batch_key(self) -> tuple[str, bool, bool]:
        """Segments that share this key can run through the model in one batch."""
        return (self.language, self.use_itn, self.timestamps == "word")


def parse_formats(value: str | list[str] | tuple[str, ...]) -> tuple[OutputFormat, ...]:
    """`json,srt` or a list → validated tuple, json always first (it is always written)."""
    from hark_serving.errors import InvalidOption

    items = value.split(",") if isinstance(value, str) else list(value)
    wanted = [i.strip().lower() for i in items if i.strip()]
    unknown = [i for i in wanted if i not in OUTPUT_FORMATS]
    if unknown:
        raise InvalidOption(
            f"unknown output format {', '.join(unknown)}; choose from {', '.join(OUTPUT_FORMATS)}"
        )
    ordered = ["json"] + [f for f in OUTPUT_FORMATS if f in wanted and f != "json"]
    return tuple(ordered)  # type: ignore[arg-type]


def parse_roles(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """`agent,customer` or a list → validated role names (lowercase), or None when empty."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    roles = tuple(str(i).strip().lower() for i in items if str(i).strip())
    if not roles:
        return None
    bad = [r for r in roles if not ROLE_PATTERN.match(r)]
    if bad:
        raise ValueError(
            f"role {bad[0]!r} is not a valid name: use lowercase letters, digits, - or _, "
            "starting with a letter (e.g. agent,customer)"
        )
    if len(set(roles)) != len(roles):
        raise ValueError(f"roles {','.join(roles)} name one role twice; give each its own name")
    return roles
