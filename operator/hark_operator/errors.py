"""Errors of the control plane.

    OperatorError
    ├── ManifestError        a TranscriptionJob manifest is invalid (names the field)
    ├── JobConfigError       the job cannot run as written (unknown profile, bucket not
    │                        allowed, bad URI); the job fails for good
    ├── ProcessorUnavailable the item processor cannot be reached or failed (retryable)
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


class ScalerError(OperatorError):
    code = "scaler_error"
