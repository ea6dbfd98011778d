"""The error record `hark.error/v1`: `<name>.error.json`, left when an input cannot be
transcribed because of its content (or, in the operator, after `maxAttempts` tries
the file may have caused).

One model, one JSON Schema shipped beside it (`schemas/error.v1.json`, generated
from the model and checked against it by a test), and one writer,
`render_error_record`, used by `hark transcribe`, `POST /v1/items` and the
operator. Failures the input did not cause (outages, refused credentials) never
become error records.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hark_serving.transcript.outputs import clean_etag, source_metadata
from hark_serving.transcript.schema import utc_now

ERROR_SCHEMA_ID = "hark.error/v1"
ERROR_CONTENT_TYPE = "application/json"


class ErrorSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uri: str = Field(description="The input that failed: s3://bucket/key or a local path.")
    etag: str | None = Field(
        None, description="The input's ETag when it failed (unquoted); null if unknown."
    )


class ErrorRecord(BaseModel):
    """Why an input has no transcript."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: Literal["hark.error/v1"] = Field("hark.error/v1", alias="schema")
    code: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$",
        description="Stable error code, e.g. corrupt_audio, empty_audio, too_long, invalid_uri.",
    )
    message: str = Field(description="What went wrong, naming the file, and how to fix it.")
    attempts: int = Field(
        ge=1, description="Tries in which the file itself may have been at fault."
    )
    source: ErrorSource
    job: str | None = Field(None, description="namespace/name of the TranscriptionJob, if any.")
    created_at: str = Field(description="UTC time the record was written, RFC 3339.")

    @classmethod
    def of(
        cls,
        code: str,
        message: str,
        *,
        uri: str,
        etag: str | None,
        attempts: int = 1,
        job: str | None = None,
    ) -> ErrorRecord:
        return cls(
            code=code,
            message=message,
            attempts=max(1, attempts),
            source=ErrorSource(uri=uri, etag=clean_etag(etag) or None),
            job=job,
            created_at=utc_now(),
        )


def render_error_record(record: ErrorRecord) -> tuple[bytes, str, dict[str, str]]:
    """(body, content type, object metadata) of `<name>.error.json`: the one writer."""
    doc = record.model_dump(mode="json", by_alias=True)
    validate_error_record(doc)
    body = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()
    return body, ERROR_CONTENT_TYPE, source_metadata(record.source.etag)


def generated_schema() -> dict[str, Any]:
    """The JSON Schema as the model defines it (what `schemas/error.v1.json` must hold)."""
    schema = ErrorRecord.model_json_schema(by_alias=True, mode="serialization")
    # Every field is always written (job may be null): a reader can rely on each key.
    schema["required"] = list(schema["properties"])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://hark.dev/schemas/error.v1.json",
        "title": ERROR_SCHEMA_ID,
        **{k: v for k, v in schema.items() if k != "title"},
    }


@lru_cache(maxsize=1)
def error_json_schema() -> dict[str, Any]:
    """The shipped JSON Schema of `hark.error/v1`."""
    text = resources.files("hark_serving.transcript").joinpath("schemas/error.v1.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    schema = error_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate_error_record(document: dict[str, Any]) -> None:
    """Raise `ValueError` naming the first offending path if `document` breaks the schema."""
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "(root)"
        raise ValueError(
            f"error record does not match {ERROR_SCHEMA_ID} at {where}: {first.message}"
        )
