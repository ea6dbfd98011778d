"""`hark doctor`'s decisions: plain data in (versions, errors, paths), one `Check` out.

Nothing here touches the network, imports torch or reads the environment; the
probes in `hark_serving.cli.doctor` gather the facts and hand them over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from hark_serving.engine.devices import TorchCuda, cuda_unusable
from hark_serving.engine.libraries import (
    Libraries,
    funasr_problem,
    torch_problem,
    torchaudio_problem,
)

if TYPE_CHECKING:
    from hark_serving.storage.profiles import StorageProfile

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def exit_code(checks: Sequence[Check]) -> int:
    """1 when any check failed (warnings do not fail the doctor), else 0."""
    return 1 if any(c.status == "fail" for c in checks) else 0


def check_torch(libs: Libraries) -> Check:
    problem = torch_problem(libs)
    if problem:
        return Check("torch", "fail", problem.message, problem.fix)
    return Check("torch", "ok", f"torch {libs.torch}")


def check_torchaudio(libs: Libraries) -> Check:
    if libs.torch is None or libs.torch_error is not None:
        return Check("torchaudio", "fail", "not checked: torch does not import", "fix torch first")
    problem = torchaudio_problem(libs.torch, libs.torchaudio, libs.torchaudio_error)
    if problem:
        return Check("torchaudio", "fail", problem.message, problem.fix)
    return Check("torchaudio", "ok", f"torchaudio {libs.torchaudio}, built for torch {libs.torch}")


def check_funasr(libs: Libraries) -> Check:
    problem = funasr_problem(libs)
    if problem:
        fix = problem.fix
        if libs.torchaudio_error is not None:
            fix = "fix torchaudio first (funasr imports it)"
        return Check("funasr", "fail", problem.message, fix)
    return Check("funasr", "ok", f"funasr {libs.funasr}")


def check_cuda(gpu_present: bool, cuda: TorchCuda | None, devices: Sequence[str] = ()) -> Check:
    if cuda is None:
        return Check("cuda", "warn", "not checked: torch does not import", "fix torch first")
    warning = cuda_unusable(gpu_present, cuda)
    if warning:
        message, _, fix = warning.partition("; ")
        return Check("cuda", "warn", message, fix)
    if cuda.available:
        return Check("cuda", "ok", f"CUDA {cuda.cuda_build}: {', '.join(devices) or 'a GPU'}")
    return Check("cuda", "ok", "no NVIDIA GPU here: the model runs on the CPU")


def check_model_dir(ref: str, path: str, missing_error: str | None) -> Check:
    """A local model directory (or the cached copy of a hub id), checked for its files."""
    if missing_error:
        detail, _, fix = missing_error.partition("; ")
        return Check("model", "fail", detail, fix)
    where = "" if path == ref else f" (cached in {path})"
    return Check("model", "ok", f"{ref}{where}: SenseVoiceSmall layout complete")


def check_hub_not_cached(ref: str, hub: str, cache: str) -> Check:
    return Check(
        "model",
        "warn",
        f"{ref} is not in the model cache {cache}: the first run downloads it from the {hub} hub",
        "on a machine without internet, copy the model directory here and set HARK_MODEL to "
        "it (or HARK_MODEL_CACHE to a cache that holds it)",
    )


def check_s3_model(ref: str, listed: Sequence[str] | None, error: str | None) -> Check:
    """An s3:// model prefix: its listing must hold the model's files."""
    if error:
        return Check("model", "fail", f"{ref}: {error}", "check the storage profile below")
    required = ("config.yaml", "model.pt")
    missing = [f for f in required if f not in (listed or ())]
    if missing:
        return Check(
            "model",
            "fail",
            f"{ref}: missing {', '.join(missing)} under this prefix",
            "upload the whole SenseVoiceSmall directory to that prefix",
        )
    return Check(
        "model", "ok", f"{ref}: {len(listed or ())} files; copied into the cache on first load"
    )


def check_settings(error: str | None) -> Check:
    if error:
        return Check("settings", "fail", error, "fix the named HARK_* variable or flag")
    return Check("settings", "ok", "HARK_* settings parse")


def check_profiles(
    path: str | None, default: str, profiles: dict[str, StorageProfile] | None, error: str | None
) -> Check:
    if error or profiles is None:
        return Check(
            "storage profiles",
            "fail",
            error or "no profiles",
            "fix the YAML file HARK_STORAGE_PROFILES names (keys: default, profiles.<name>."
            "endpointUrl, region, addressingStyle, allowedBuckets, credentialsSecret, "
            "credentialsDir)",
        )
    names = ", ".join(
        f"{name}{' (default)' if name == default else ''}: "
        f"{', '.join(p.allowed_buckets) if p.allowed_buckets else 'any bucket'}"
        for name, p in sorted(profiles.items())
    )
    source = path or "HARK_S3_* settings and the AWS environment"
    return Check("storage profiles", "ok", f"from {source}; {names}")


S3Problem = Literal["unreachable", "no_credentials", "denied", "no_bucket", "other"]

S3_FIXES: dict[str, str] = {
    "unreachable": "check the endpoint (HARK_S3_ENDPOINT_URL or the profile's endpointUrl) and "
    "that this machine can reach it",
    "no_credentials": "give credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or the "
    "profile's credentialsDir",
    "denied": "check the credentials and the bucket policy (they need list and read/write)",
    "no_bucket": "create the bucket, or correct the profile's allowedBuckets",
    "other": "check the profile's endpoint, region and addressing style",
}


def check_s3(
    profile: str,
    endpoint: str | None,
    targets: Sequence[str],
    problem: S3Problem | None,
    message: str = "",
    *,
    configured: bool = True,
) -> Check:
    """`configured`: a profiles file or an endpoint names this store; without one, S3 is
    optional (local files need none), so a failure only warns."""
    name = f"s3 {profile}"
    where = endpoint or "AWS"
    if problem is None:
        return Check(name, "ok", f"{where}: reached ({', '.join(targets)})")
    if not configured:
        return Check(
            name,
            "warn",
            f"{where}: {message}; no S3 is configured, which only s3:// paths need",
            S3_FIXES[problem],
        )
    return Check(name, "fail", f"{where}: {message}", S3_FIXES[problem])


def classify_s3_error(exc: BaseException) -> tuple[S3Problem, str]:
    """Which of the fixable S3 problems an exception from boto3 is, with a short message."""
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc, NoCredentialsError):
        return "no_credentials", "no credentials found"
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError)):
        return "unreachable", f"cannot connect ({type(exc).__name__}: {exc})"
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if code in ("NoSuchBucket", "404", "NotFound") or status == "404":
            return "no_bucket", f"no such bucket ({code or status})"
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch") or (
            status == "403"
        ):
            return "denied", f"access denied ({code or status})"
        return "other", f"S3 error {code or status}: {exc}"
    return "other", f"{type(exc).__name__}: {exc}"
