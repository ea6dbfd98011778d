"""Errors of the data plane, each with a stable `code` that crosses process boundaries.

    HarkError
    ├── InputError               the audio or the request is wrong; retrying will not help
    │   ├── EmptyFile            empty_file
    │   ├── UnsupportedFormat    unsupported_format
    │   ├── CorruptAudio         corrupt_audio
    │   ├── TruncatedAudio       truncated_audio
    │   ├── NoAudioStream        no_audio_stream
    │   ├── EmptyAudio           empty_audio
    │   ├── TooLarge             too_large
    │   ├── TooLong              too_long
    │   ├── TooManyChannels      too_many_channels     (split mode)
    │   └── InvalidOption        invalid_option
    ├── StorageError
    │   ├── InvalidUri           invalid_uri
    │   ├── ObjectNotFound       not_found
    │   ├── AccessDenied         access_denied
    │   ├── BucketNotAllowed     bucket_not_allowed    (outside the profile, or read-only)
    │   ├── ProfileNotAllowed    profile_not_allowed   (the job's namespace may not use it)
    │   ├── StorageUnavailable   storage_unavailable   (transient)
    │   └── SourceChanged        source_changed        (transient: the input was re-uploaded
    │                                                   while it was transcribed)
    ├── ModelError               model_unavailable
    ├── ConfigError              invalid_config
    └── InternalError            internal              (a bug; the message says where)

The transport layers (HTTP routes, CLI, operator) map codes to status codes and
exit codes; nothing here knows about HTTP. `transient` tells callers whether a
retry can succeed.
"""

from __future__ import annotations


class HarkError(Exception):
    """Base of every error Hark raises on purpose."""

    code = "internal"
    transient = False

    def __init__(self, message: str, *, subject: str | None = None) -> None:
        self.message = message
        # The file, URI or setting the error is about, so messages can name it.
        self.subject = subject
        super().__init__(f"{subject}: {message}" if subject else message)

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": str(self)}


class InputError(HarkError):
    code = "invalid_input"


class EmptyFile(InputError):
    code = "empty_file"


class UnsupportedFormat(InputError):
    code = "unsupported_format"


class CorruptAudio(InputError):
    code = "corrupt_audio"


class TruncatedAudio(InputError):
    code = "truncated_audio"


class NoAudioStream(InputError):
    code = "no_audio_stream"


class EmptyAudio(InputError):
    code = "empty_audio"


class TooLarge(InputError):
    code = "too_large"


class TooManyChannels(InputError):
    code = "too_many_channels"


class TooLong(InputError):
    code = "too_long"


class InvalidOption(InputError):
    code = "invalid_option"


class StorageError(HarkError):
    code = "storage_error"


class InvalidUri(StorageError):
    code = "invalid_uri"


class ObjectNotFound(StorageError):
    code = "not_found"


class AccessDenied(StorageError):
    code = "access_denied"


class BucketNotAllowed(StorageError):
    code = "bucket_not_allowed"


class ProfileNotAllowed(StorageError):
    code = "profile_not_allowed"


class StorageUnavailable(StorageError):
    code = "storage_unavailable"
    transient = True


class SourceChanged(StorageError):
    """The input's ETag changed while it was transcribed; another try makes its transcript."""

    code = "source_changed"
    transient = True


class ModelError(HarkError):
    code = "model_unavailable"


class ConfigError(HarkError):
    code = "invalid_config"


class InternalError(HarkError):
    """Something failed that should not have; wraps the original exception."""

    code = "internal"
