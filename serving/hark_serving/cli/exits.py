"""Exit codes of every `hark` command: one table, documented in docs/cli.md and `--help`."""

from __future__ import annotations

from hark_serving.errors import HarkError, ModelError, StorageUnavailable

OK = 0
FAILURES = 1  # some files failed (each has its .error.json); `hark doctor`: a check failed
USAGE = 2  # a bad flag, setting, manifest or input path; nothing was transcribed
MODEL = 3  # the model could not be resolved or loaded; the message names the cause and fix
STORAGE = 4  # the object store could not be reached; retrying later can succeed
INTERRUPTED = 130  # Ctrl-C; outputs written so far are kept

EPILOG = (
    "Exit codes: 0 ok; 1 some files failed (hark doctor: a check failed); 2 usage (bad flag, "
    "setting or input); 3 the model could not be loaded; 4 the object store is unreachable; "
    "130 interrupted. Settings: every HARK_* variable is listed beside its flag; "
    "docs/cli.md has the details."
)


def for_error(exc: HarkError) -> int:
    """The exit code for an error that stopped a command before or while it loaded."""
    if isinstance(exc, ModelError):
        return MODEL
    if isinstance(exc, StorageUnavailable):
        return STORAGE
    return USAGE
