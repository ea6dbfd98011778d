"""Form fields of `POST /v1/transcribe` → validated options, with errors that name the field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from hark_serving.analytics.rules import Rules, parse_rules
from hark_serving.errors import InvalidOption
from hark_serving.options import (
    LANGUAGES,
    OUTPUT_FORMATS,
    OutputFormat,
    TranscribeOptions,
    parse_roles,
)

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class TranscribeForm:
    options: TranscribeOptions
    format: OutputFormat
    rules: Rules | None = None


def _choice(field: str, value: str | None, allowed: tuple[str, ...], default: str) -> str:
    if value is None or not value.strip():
        return default
    v = value.strip().lower()
    if v not in allowed:
        raise InvalidOption(
            f"unknown {field} {value!r}; choose from {', '.join(allowed)}", subject=field
        )
    return v


def parse_bool(field: str, value: str | None, default: bool) -> bool:
    if value is None or not value.strip():
        return default
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise InvalidOption(f"{field} must be true or false, got {value!r}", subject=field)


def parse_transcribe_form(
    get: dict[str, str | None], defaults: TranscribeOptions
) -> TranscribeForm:
    """`get` holds the last value of each field the client sent (None when absent)."""
    rules = None
    if (get.get("categories") or "").strip():
        # YAML or JSON: `{categories: [...]}` or the bare list.
        rules = parse_rules(get.get("categories") or "", source="categories")
    try:
        roles = parse_roles(get.get("roles"))
    except ValueError as exc:
        raise InvalidOption(str(exc), subject="roles") from None
    channels = _choice("channels", get.get("channels"), ("mix", "split"), defaults.channels)
    if roles is None and rules is not None and channels == "mix":
        roles = ("speaker",)  # categories need a call report: one role on a mixed file
    options = TranscribeOptions(
        language=_choice("language", get.get("language"), LANGUAGES, defaults.language),
        use_itn=parse_bool("use_itn", get.get("use_itn"), defaults.use_itn),
        timestamps=_choice(
            "timestamps", get.get("timestamps"), ("segment", "word"), defaults.timestamps
        ),
        channels=channels,
        roles=roles,
    )
    fmt = _choice("format", get.get("format"), OUTPUT_FORMATS, "json")
    return TranscribeForm(options, cast(OutputFormat, fmt), rules)
