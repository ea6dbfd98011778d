"""The categories rules language: a list of named categories, each a combination of filters.

    categories:
      - name: angry-at-the-end
        alert: true
        all:                    # or any:
          - emotion: {role: customer, in: [ANGRY], min_seconds: 3, window: {last_percent: 20}}
          - keyword: {role: agent, phrases: [sorry], negate: true}

The same list comes from a YAML file (`hark transcribe --categories`), a
TranscriptionJob's `analytics.categories` or a form field of the HTTP API.
`load_rules` turns any of them into validated models, or raises `InvalidOption`
naming the category and the field at fault.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hark_serving.errors import InvalidOption

Emotion = Literal[
    "HAPPY", "SAD", "ANGRY", "NEUTRAL", "FEARFUL", "DISGUSTED", "SURPRISED", "EMO_UNKNOWN"
]
Event = Literal["BGM", "Applause", "Laughter", "Cry", "Sneeze", "Breath", "Cough", "Event_UNK"]
NAME_PATTERN = r"^[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?$"
FILTER_KINDS = (
    "keyword",
    "emotion",
    "event",
    "non_talk",
    "interruption",
    "talk_speed",
    "sentiment",
)


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Window(_Rule):
    """Where in the call a filter looks: one of the first/last forms, or a percent range."""

    first_seconds: float | None = Field(None, gt=0)
    last_seconds: float | None = Field(None, gt=0)
    first_percent: float | None = Field(None, gt=0, le=100)
    last_percent: float | None = Field(None, gt=0, le=100)
    from_percent: float | None = Field(None, ge=0, le=100)
    to_percent: float | None = Field(None, ge=0, le=100)

    @model_validator(mode="after")
    def _one_form(self) -> Window:
        forms = [
            self.first_seconds is not None,
            self.last_seconds is not None,
            self.first_percent is not None,
            self.last_percent is not None,
            self.from_percent is not None or self.to_percent is not None,
        ]
        if sum(forms) != 1:
            raise ValueError(
                "give exactly one of first_seconds, last_seconds, first_percent, "
                "last_percent, or from_percent/to_percent"
            )
        lo, hi = self.from_percent or 0.0, 100.0 if self.to_percent is None else self.to_percent
        if lo >= hi:
            raise ValueError(f"from_percent ({lo}) must be below to_percent ({hi})")
        return self

    def bounds(self, duration: float) -> tuple[float, float]:
        """The window as [start, end) seconds of a call `duration` long."""
        if self.first_seconds is not None:
            return 0.0, min(duration, self.first_seconds)
        if self.last_seconds is not None:
            return max(0.0, duration - self.last_seconds), duration
        if self.first_percent is not None:
            return 0.0, duration * self.first_percent / 100
        if self.last_percent is not None:
            return duration * (1 - self.last_percent / 100), duration
        lo, hi = self.from_percent or 0.0, 100.0 if self.to_percent is None else self.to_percent
        return duration * lo / 100, duration * hi / 100


class _Filter(_Rule):
    role: str | None = None
    window: Window | None = None
    negate: bool = False


class KeywordFilter(_Filter):
    phrases: list[str] | None = Field(None, min_length=1)
    regex: str | None = None
    ignore_case: bool = True

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_of(self) -> KeywordFilter:
        if (self.phrases is None) == (self.regex is None):
            raise ValueError("give either phrases (exact, a list) or regex")
        if self.phrases is not None and not all(p.strip() for p in self.phrases):
            raise ValueError("phrases may not be empty")
        return self


class EmotionFilter(_Filter):
    in_: list[Emotion] = Field(alias="in", min_length=1)
    min_seconds: float | None = Field(None, ge=0)
    min_share: float | None = Field(None, gt=0, le=1)


class EventFilter(_Filter):
    type: Event
    min_count: int = Field(1, ge=1)


class NonTalkFilter(_Filter):
    min_seconds: float = Field(gt=0)

    @model_validator(mode="after")
    def _no_role(self) -> NonTalkFilter:
        if self.role is not None:
            raise ValueError("non_talk is silence on every channel and takes no role")
        return self


class InterruptionFilter(_Filter):
    min_count: int | None = Field(None, ge=1)
    min_seconds: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_of(self) -> InterruptionFilter:
        if self.min_count is None and self.min_seconds is None:
            raise ValueError("give min_count, min_seconds or both")
        return self


class _Threshold(_Filter):
    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> _Threshold:
        if self.above is None and self.below is None:
            raise ValueError("give above, below or both")
        if self.above is not None and self.below is not None and self.above >= self.below:
            raise ValueError(f"above ({self.above}) must be less than below ({self.below})")
        return self


class TalkSpeedFilter(_Threshold):
    pass


class SentimentFilter(_Threshold):
    above: float | None = Field(None, ge=-1, le=1)
    below: float | None = Field(None, ge=-1, le=1)


AnyFilter = (
    KeywordFilter
    | EmotionFilter
    | EventFilter
    | NonTalkFilter
    | InterruptionFilter
    | TalkSpeedFilter
    | SentimentFilter
)


class FilterItem(_Rule):
    """One filter: a mapping with exactly one key, the filter's kind."""

    keyword: KeywordFilter | None = None
    emotion: EmotionFilter | None = None
    event: EventFilter | None = None
    non_talk: NonTalkFilter | None = None
    interruption: InterruptionFilter | None = None
    talk_speed: TalkSpeedFilter | None = None
    sentiment: SentimentFilter | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> FilterItem:
        given = [k for k in FILTER_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"each filter names exactly one of {', '.join(FILTER_KINDS)}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in FILTER_KINDS if getattr(self, k) is not None)

    @property
    def filter(self) -> AnyFilter:
        found: AnyFilter = getattr(self, self.kind)
        return found


class Category(_Rule):
    name: str = Field(pattern=NAME_PATTERN, description="Lowercase letters, digits, - and _.")
    alert: bool = False
    all: list[FilterItem] | None = Field(None, min_length=1)
    any: list[FilterItem] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_combination(self) -> Category:
        if (self.all is None) == (self.any is None):
            raise ValueError("give either all (every filter matches) or any (one is enough)")
        return self

    @property
    def filters(self) -> list[FilterItem]:
        return self.all if self.all is not None else self.any or []


class Rules(_Rule):
    categories: list[Category] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Rules:
        seen: set[str] = set()
        for c in self.categories:
            if c.name in seen:
                raise ValueError(f"category {c.name!r} is defined twice")
            seen.add(c.name)
        return self


def _where(raw: Any, loc: tuple[int | str, ...]) -> str:
    """`('categories', 1, 'all', 0, 'emotion', 'in')` → `category 'x': all[0].emotion.in`."""
    parts = list(loc)
    prefix = ""
    if len(parts) >= 2 and parts[0] == "categories" and isinstance(parts[1], int):
        index = parts[1]
        name = None
        with contextlib.suppress(KeyError, IndexError, TypeError, AttributeError):
            name = raw["categories"][index].get("name")
        prefix = f"category {name!r}" if name else f"category #{index + 1}"
        parts = parts[2:]
    path = ""
    for p in parts:
        path += f"[{p}]" if isinstance(p, int) else (f".{p}" if path else str(p))
    path = path.replace("in_", "in")
    return ": ".join(x for x in (prefix, path) if x)


def load_rules(data: Any, *, source: str = "categories") -> Rules:
    """Validated rules from parsed YAML/JSON (`{categories: [...]}` or the bare list)."""
    raw = {"categories": data} if isinstance(data, list) else data
    if raw is None:
        raw = {"categories": []}
    if not isinstance(raw, dict):
        raise InvalidOption(
            "expected a mapping with a categories list (or the list itself)", subject=source
        )
    try:
        return Rules.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = _where(raw, tuple(err["loc"]))
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        raise InvalidOption("; ".join(problems), subject=source) from None


def parse_rules(text: str, *, source: str = "categories") -> Rules:
    """Rules from YAML (or JSON) text."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidOption(f"not valid YAML: {exc}", subject=source) from None
    return load_rules(data, source=source)
