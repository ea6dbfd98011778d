"""The output contract shared by `hark transcribe`, `POST /v1/items` and the operator.

Beside every input `<name>` a run writes `<name>.json` (+ `.srt`, `.vtt`,
`.txt`), or `<name>.error.json` when the input itself cannot be transcribed.
Every object carries the input's ETag in its user metadata
(`hark-source-etag`), and a transcript also in its `source.etag`.

One definition of *current*: an output is current when the source ETag it
records equals the input's ETag now. Timestamps never decide it; a listing's
`LastModified` may only rule an output out (an input newer than its output
cannot be current), and whatever it cannot rule out is checked by ETag.
"""

from __future__ import annotations

from collections.abc import Mapping

SOURCE_ETAG_METADATA = "hark-source-etag"


def clean_etag(etag: str | None) -> str:
    """An ETag without the quotes S3 puts around it."""
    return (etag or "").strip().strip('"')


def is_current(recorded: str | None, input_etag: str | None) -> bool:
    """Whether an output recording source ETag `recorded` is current for the input's ETag."""
    want = clean_etag(input_etag)
    return bool(want) and clean_etag(recorded) == want


def recorded_etag(metadata: Mapping[str, str] | None) -> str | None:
    """The source ETag an output object records in its metadata, if any."""
    if metadata is None:
        return None
    return metadata.get(SOURCE_ETAG_METADATA)


def source_metadata(etag: str | None) -> dict[str, str]:
    """The metadata every output object of an input with this ETag carries."""
    return {SOURCE_ETAG_METADATA: clean_etag(etag)}
