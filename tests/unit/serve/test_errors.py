"""One table maps every error code to an HTTP status."""

from __future__ import annotations

import pytest

from hark_serving import errors
from hark_serving.serve import errors as serve_errors
from hark_serving.serve.errors import STATUS_BY_CODE, ReportedError, error_body, status_for


def _codes(cls: type[errors.HarkError]) -> set[str]:
    found = {cls.code}
    for sub in cls.__subclasses__():
        found |= _codes(sub)
    return found


def test_every_error_class_has_a_row_in_the_table() -> None:
    # Import the HTTP layer's own errors too, so they are among the subclasses.
    assert serve_errors.Unauthorized.code == "unauthorized"
    missing = _codes(errors.HarkError) - set(STATUS_BY_CODE)
    assert not missing


@pytest.mark.parametrize(
    "code, status",
    [
        ("too_large", 413),
        ("too_long", 413),
        ("unsupported_format", 415),
        ("corrupt_audio", 422),
        ("empty_file", 422),
        ("empty_audio", 422),
        ("truncated_audio", 422),
        ("no_audio_stream", 422),
        ("invalid_option", 422),
        ("bucket_not_allowed", 403),
        ("access_denied", 403),
        ("not_found", 404),
        ("storage_unavailable", 503),
        ("model_unavailable", 503),
        ("unauthorized", 401),
        ("internal", 500),
    ],
)
def test_codes_map_to_the_documented_status(code: str, status: int) -> None:
    assert status_for(code) == status


def test_an_unknown_code_is_a_server_error() -> None:
    assert status_for("no_such_code") == 500


def test_the_error_body_has_code_and_message_only() -> None:
    assert error_body("too_large", "big") == {"error": {"code": "too_large", "message": "big"}}


def test_a_reported_error_keeps_the_code_of_the_deployment_that_raised_it() -> None:
    err = ReportedError("corrupt_audio", "a.mp3: decoding failed")
    assert (err.code, str(err), err.transient) == ("corrupt_audio", "a.mp3: decoding failed", False)
    assert ReportedError("storage_unavailable", "down").transient
    assert errors.HarkError.code == "internal"  # the class attribute is untouched
