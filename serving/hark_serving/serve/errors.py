"""The one table from error codes to HTTP status, and the errors only the HTTP layer raises.

Every error response has the body `{"error": {"code": ..., "message": ...}}`;
`code` is the stable code of a `hark_serving.errors` error (or of one below),
so clients branch on it, never on the message.

    HarkError                    (hark_serving.errors)
    └── ServeError               errors of the HTTP layer itself
        ├── Unauthorized         unauthorized            401
        ├── Forbidden            forbidden               403  (the other identity's token)
        ├── UnsupportedMediaType unsupported_media_type  415
        ├── RouteNotFound        route_not_found         404
        ├── MethodNotAllowed     method_not_allowed      405
        ├── NotReady             model_unavailable       503
        ├── Unavailable          unavailable             503  (a replica died; retry)
        ├── Timeout              timeout                 504
        ├── Overloaded           overloaded              503  (admission control; retry)
        ├── UploadTimeout        upload_timeout          408  (the body arrived too slowly)
        └── ReportedError        the code another deployment reported
"""

from __future__ import annotations

from typing import Any

from hark_serving.errors import HarkError

# Codes that are not in this table are answered with 500: a new error class
# without a row here is a bug worth seeing.
STATUS_BY_CODE: dict[str, int] = {
    # the request or the audio is wrong
    "invalid_input": 422,
    "invalid_option": 422,
    "empty_file": 422,
    "empty_audio": 422,
    "corrupt_audio": 422,
    "truncated_audio": 422,
    "no_audio_stream": 422,
    "unsupported_format": 415,
    "unsupported_media_type": 415,
    "too_large": 413,
    "too_long": 413,  # over the duration limit: too large a piece of work, like too many bytes
    "too_many_channels": 422,
    # object storage
    "invalid_uri": 422,
    "not_found": 404,
    "access_denied": 403,
    "bucket_not_allowed": 403,
    "profile_not_allowed": 403,
    "storage_unavailable": 503,
    "source_changed": 409,
    "in_progress": 409,  # another request holds the output's lease: try again later  # re-uploaded mid-transcription: try again for the new bytes
    "storage_error": 502,  # the object store answered with something we did not expect
    # the HTTP layer
    "unauthorized": 401,
    "forbidden": 403,
    "route_not_found": 404,
    "method_not_allowed": 405,
    "model_unavailable": 503,
    "unavailable": 503,
    "timeout": 504,
    "overloaded": 503,
    "upload_timeout": 408,
    # the server
    "invalid_config": 500,
    "internal": 500,
}

# Codes whose requests can be retried as they are (used for Retry-After and `retryable`).
RETRYABLE_CODES = frozenset(
    {"storage_unavailable", "model_unavailable", "unavailable", "timeout", "overloaded"}
)


def status_for(code: str) -> int:
    return STATUS_BY_CODE.get(code, 500)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class ServeError(HarkError):
    code = "internal"


class Unauthorized(ServeError):
    code = "unauthorized"


class Forbidden(ServeError):
    code = "forbidden"


class UnsupportedMediaType(ServeError):
    code = "unsupported_media_type"


class RouteNotFound(ServeError):
    code = "route_not_found"


class MethodNotAllowed(ServeError):
    code = "method_not_allowed"


class NotReady(ServeError):
    code = "model_unavailable"
    transient = True


class Unavailable(ServeError):
    code = "unavailable"
    transient = True


class Timeout(ServeError):
    code = "timeout"
    transient = True


class Overloaded(ServeError):
    code = "overloaded"
    transient = True


class UploadTimeout(ServeError):
    code = "upload_timeout"


class ReportedError(HarkError):
    """An error another deployment reported as a `messages.Failure` (code and message)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.transient = code in RETRYABLE_CODES
