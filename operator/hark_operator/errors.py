"""Errors of the control plane.

    OperatorError
    ├── ManifestError        a TranscriptionJob manifest is invalid (names the field)
    ├── JobConfigError       the job cannot run as written (unknown profile, bucket not
    │                        allowed, bad URI); the job fails for good
    ├── ProcessorUnavailable the item processor cannot be reached or failed (retryable)
    │   └── ProcessorRefused     it refuses the operator's credential or URL (401/403/404)
    └── ScalerError          a scaler backend could not read or write the floor

Data-plane errors (`hark_serving.errors.HarkError`) keep their own codes; the
operator wraps them where it decides what they mean for a job.
"""

from __future__ import annotations


class OperatorError(Exception):
    code = "operator_error"


class ManifestError(OperatorError):
    code = "invalid_manifest"


class JobConfigError(OperatorError):
    code = "invalid_job"


class ProcessorUnavailable(OperatorError):
    """The processor did not answer with a result; trying again may help."""

    code = "processor_unavailable"


class ProcessorRefused(ProcessorUnavailable):
    """The processor answered 401, 403 or 404 without a result: the token or URL is wrong."""

    code = "processor_refused"


class ScalerError(OperatorError):
    code = "scaler_error"
