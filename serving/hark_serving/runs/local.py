"""Transcribing files and prefixes into a destination: what `hark transcribe` runs.

Planning is plain: list the inputs, keep their paths relative to the root they
were found under, and skip an input whose JSON output already records its
ETag (unless overwriting). Formats missing beside a current JSON are rendered
from it without running the model again. Each finished file gets its outputs
written whole; a file that fails gets `<name>.error.json` and the run goes on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hark_serving.engine.embedded import AudioJob, Engine, Outcome
from hark_serving.errors import HarkError, InvalidOption, StorageError
from hark_serving.options import TranscribeOptions
from hark_serving.storage.locations import (
    STDIN,
    InputRef,
    OutputLocation,
    fetched,
    list_inputs,
)
from hark_serving.storage.uris import error_name, output_name
from hark_serving.transcript.error_record import ErrorRecord, render_error_record
from hark_serving.transcript.outputs import is_current, source_metadata
from hark_serving.transcript.schema import Transcript, validate_result
from hark_serving.transcript.writers import CONTENT_TYPES, render

if TYPE_CHECKING:  # a store comes from the caller; local paths import no boto3
    from hark_serving.storage.s3 import S3Store

log = logging.getLogger(__name__)


@dataclass
class Planned:
    todo: list[InputRef] = field(default_factory=list)
    skipped: list[InputRef] = field(default_factory=list)
    rerendered: list[InputRef] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # written while re-rendering


@dataclass
class Failure:
    uri: str
    code: str
    message: str


@dataclass
class RunReport:
    succeeded: int = 0
    skipped: int = 0
    rerendered: int = 0
    failures: list[Failure] = field(default_factory=list)
    audio_seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)  # URIs written, every format


def read_current(out: OutputLocation, ref: InputRef) -> Transcript | None:
    """The existing transcript of `ref` if it was made from this exact input."""
    data = out.read_bytes(output_name(ref.relative, "json"))
    if data is None:
        return None
    try:
        doc = json.loads(data)
        if not is_current(doc.get("source", {}).get("etag"), ref.etag):
            return None
        return Transcript.model_validate(doc)
    except (ValueError, TypeError):
        log.warning("%s: existing output is unreadable; transcribing again", ref.uri)
        return None


def gather_inputs(
    paths: Sequence[str], store: S3Store | None, include: Sequence[str], exclude: Sequence[str]
) -> list[InputRef]:
    """Every input under `paths`; two inputs may not map to one output name."""
    seen: dict[str, str] = {}
    refs: list[InputRef] = []
    for root in paths:
        for ref in list_inputs(root, store, include, exclude):
            if ref.relative in seen:
                raise InvalidOption(
                    f"{seen[ref.relative]} and {ref.uri} would both write {ref.relative}.json; "
                    "transcribe them into different destinations"
                )
            seen[ref.relative] = ref.uri
            refs.append(ref)
    return refs


def plan(
    refs: Sequence[InputRef],
    out: OutputLocation,
    formats: Sequence[str],
    overwrite: bool,
) -> Planned:
    planned = Planned()
    for ref in refs:
        current = None if overwrite or ref.uri == STDIN else read_current(out, ref)
        if current is None:
            planned.todo.append(ref)
            continue
        missing = [
            f
            for f in formats
            if f != "json" and out.read_bytes(output_name(ref.relative, f)) is None
        ]
        if missing:
            planned.outputs += write_outputs(out, ref, current, missing, validate=False)
            planned.rerendered.append(ref)
        else:
            planned.skipped.append(ref)
    return planned


def write_outputs(
    out: OutputLocation,
    ref: InputRef,
    transcript: Transcript,
    formats: Sequence[str],
    *,
    validate: bool = True,
) -> list[str]:
    """Write each format whole, JSON last so a current JSON implies the rest exist.

    Returns the URIs written."""
    metadata = source_metadata(ref.etag)
    if validate:
        validate_result(transcript.to_json_dict())
    written = []
    for fmt in [f for f in formats if f != "json"] + (["json"] if "json" in formats else []):
        name = output_name(ref.relative, fmt)
        out.write(
            name, render(transcript, fmt).encode(), CONTENT_TYPES[fmt] + "; charset=utf-8", metadata
        )
        written.append(out.uri_for(name))
    out.delete(error_name(ref.relative))
    return written


def write_error(out: OutputLocation, ref: InputRef, error: HarkError, attempts: int = 1) -> None:
    record = ErrorRecord.of(error.code, str(error), uri=ref.uri, etag=ref.etag, attempts=attempts)
    out.write(error_name(ref.relative), *render_error_record(record))


def jobs_for(refs: Sequence[InputRef], store: S3Store | None) -> Iterator[AudioJob]:
    for ref in refs:
        yield AudioJob(
            uri=ref.uri,
            open=lambda ref=ref: fetched(ref, store),  # type: ignore[misc]
            etag=ref.etag or None,  # stdin: known once read
            size=None if ref.uri == STDIN else ref.size,
            tag=ref,
        )


def transcribe_refs(
    engine: Engine,
    refs: Sequence[InputRef],
    out: OutputLocation,
    options: TranscribeOptions,
    formats: Sequence[str],
    store: S3Store | None,
    *,
    on_outcome: Callable[[Outcome, Failure | None], None] | None = None,
    on_audio: Callable[[float], None] | None = None,
    finish: Callable[[InputRef, Transcript], Transcript] | None = None,
) -> RunReport:
    """`finish` (call analytics) sees each new transcript before it is written."""
    report = RunReport()
    for outcome in engine.run(jobs_for(refs, store), options, on_audio=on_audio):
        ref: InputRef = outcome.job.tag
        failure = None
        try:
            if outcome.transcript is not None:
                transcript = outcome.transcript
                if finish is not None:
                    transcript = finish(ref, transcript)
                report.outputs += write_outputs(out, ref, transcript, formats)
                report.succeeded += 1
                report.audio_seconds += outcome.transcript.source.duration
            else:
                assert outcome.error is not None
                failure = Failure(ref.uri, outcome.error.code, outcome.error.message)
                write_error(out, ref, outcome.error)
        except StorageError as exc:
            failure = Failure(ref.uri, exc.code, f"writing the outputs failed: {exc.message}")
        if failure is not None:
            report.failures.append(failure)
        if on_outcome is not None:
            on_outcome(outcome, failure)
    return report


def transcribe_to_stream(
    engine: Engine,
    refs: Sequence[InputRef],
    options: TranscribeOptions,
    fmt: str,
    store: S3Store | None,
    write: Callable[[str], object],
    *,
    on_outcome: Callable[[Outcome, Failure | None], None] | None = None,
    on_audio: Callable[[float], None] | None = None,
) -> RunReport:
    """Transcribe `refs` and hand each transcript, rendered as `fmt`, to `write` (stdout)."""
    report = RunReport()
    for outcome in engine.run(jobs_for(refs, store), options, on_audio=on_audio):
        failure = None
        if outcome.transcript is not None:
            write(render(outcome.transcript, fmt))
            report.succeeded += 1
            report.audio_seconds += outcome.transcript.source.duration
        else:
            assert outcome.error is not None
            failure = Failure(outcome.job.uri, outcome.error.code, outcome.error.message)
            report.failures.append(failure)
        if on_outcome is not None:
            on_outcome(outcome, failure)
    return report


def destination_exists_as_file(dest: str) -> bool:
    return not dest.startswith("s3://") and Path(dest).expanduser().is_file()
