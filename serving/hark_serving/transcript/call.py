"""The `call` object of `hark.transcript/v1`: a call report for recordings with one role per channel.

Names follow AWS Call Analytics where one exists, in snake_case. Every figure is in
seconds of the recording unless its name says otherwise; `hark_serving.analytics`
computes them from the segments (and the decoded samples, for loudness).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Span(_Model):
    start: float
    end: float


class TalkTime(_Model):
    seconds: float = Field(description="Seconds in which this role speaks (overlaps once).")
    share: float = Field(description="This role's seconds over all roles' seconds, 0..1.")


class NonTalkInstance(_Model):
    start: float
    end: float
    hold: bool = Field(False, description="Background music plays during the silence.")


class NonTalk(_Model):
    total_seconds: float = Field(description="Seconds in which no role speaks.")
    instances: list[NonTalkInstance] = Field(default_factory=list)


class Interruptions(_Model):
    total: int = 0
    by_interrupter: dict[str, list[Span]] = Field(default_factory=dict)


class TalkSpeed(_Model):
    rate: float
    unit: Literal["words_per_minute", "chars_per_minute"]


class Sentiment(_Model):
    overall: float | None = None
    by_quarter: list[float | None] = Field(default_factory=lambda: [None] * 4)  # type: ignore[arg-type]
    end: float | None = Field(None, description="Score of the role's last turn.")
    end_emotion: str | None = Field(None, description="Emotion of the role's last segment.")


class CallEvent(_Model):
    type: str
    role: str | None
    start: float
    end: float


class Turn(_Model):
    role: str
    start: float
    end: float
    segments: list[int]
    loudness_dbfs: float | None = None


class CategoryMatch(_Model):
    points: list[Span] = Field(default_factory=list)
    alert: bool = False


class Categories(_Model):
    matched: list[str] = Field(default_factory=list)
    details: dict[str, CategoryMatch] = Field(default_factory=dict)


class Call(_Model):
    roles: dict[str, str] = Field(description="Channel (as a string) to role.")
    duration: float
    talk_time: dict[str, TalkTime] = Field(default_factory=dict)
    non_talk: NonTalk
    interruptions: Interruptions = Field(default_factory=Interruptions)
    talk_speed: dict[str, TalkSpeed | None] = Field(default_factory=dict)
    loudness: dict[str, float | None] = Field(
        default_factory=dict, description="Average dBFS of each role's speech."
    )
    emotions: dict[str, dict[str, float]] = Field(default_factory=dict)
    sentiment: dict[str, Sentiment] = Field(default_factory=dict)
    events: list[CallEvent] = Field(default_factory=list)
    turns: list[Turn] = Field(default_factory=list)
    categories: Categories = Field(default_factory=Categories)
