"""Reading SenseVoice's rich output: `<|zh|><|HAPPY|><|Laughter|><|withitn|>text`.

The model emits its tags first, but nothing here relies on it: tags are read
wherever they appear, the first language and emotion win, events are kept in
order without repeats, and a tag this module does not know is left in the raw
text and otherwise ignored, so a newer model vocabulary never breaks parsing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LANGUAGES = frozenset({"zh", "en", "yue", "ja", "ko", "nospeech"})
EMOTIONS = frozenset(
    {"HAPPY", "SAD", "ANGRY", "NEUTRAL", "FEARFUL", "DISGUSTED", "SURPRISED", "EMO_UNKNOWN"}
)
EVENTS = frozenset(
    {"Speech", "BGM", "Applause", "Laughter", "Cry", "Sneeze", "Breath", "Cough", "Event_UNK"}
)
# `Speech` is the model's "nothing but speech" event; listing it on every segment
# would drown the events users look for, so it stays in `raw` only.
DEFAULT_EVENT = "Speech"
TEXT_NORMS = frozenset({"withitn", "woitn"})

_TAG = re.compile(r"<\|([^<>|]{1,64})\|>")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ParsedText:
    language: str | None
    emotion: str | None
    events: tuple[str, ...]
    itn: bool | None
    text: str
    unknown_tags: tuple[str, ...]


def parse_rich_text(raw: str) -> ParsedText:
    """Split model output into its tags and clean text."""
    language: str | None = None
    emotion: str | None = None
    itn: bool | None = None
    events: list[str] = []
    unknown: list[str] = []
    for match in _TAG.finditer(raw):
        tag = match.group(1)
        if tag in LANGUAGES:
            language = language or tag
        elif tag in EMOTIONS:
            emotion = emotion or tag
        elif tag in EVENTS:
            if tag != DEFAULT_EVENT and tag not in events:
                events.append(tag)
        elif tag in TEXT_NORMS:
            itn = (tag == "withitn") if itn is None else itn
        else:
            unknown.append(tag)
    text = _SPACES.sub(" ", _TAG.sub(" ", raw)).strip()
    return ParsedText(language, emotion, tuple(events), itn, text, tuple(unknown))


def strip_tags(raw: str) -> str:
    return _SPACES.sub(" ", _TAG.sub(" ", raw)).strip()
