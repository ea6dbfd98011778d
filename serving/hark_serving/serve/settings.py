"""Settings of the Serve application: the engine's `Settings` plus what only serving needs.

Same `HARK_` prefix and rules as `hark_serving.config`: one object per
process, read from the environment with overrides on top. The overrides are
the `args` of the Serve application (a RayService's `serveConfigV2`, or the
flags of `hark serve`); every replica rebuilds its settings from its own
environment plus those args, so secrets such as `HARK_API_TOKEN` reach a
replica through its pod's environment and never travel inside the Serve config.

Deployment sizing follows one pattern per deployment (`ingress`, `worker`,
`transcriber`): `<name>_min_replicas`, `<name>_max_replicas`,
`<name>_target_ongoing_requests`, `<name>_max_ongoing_requests`,
`<name>_num_cpus` (and `transcriber_num_gpus`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator

from hark_serving.config import Settings
from hark_serving.errors import ConfigError

DeploymentName = Literal["ingress", "worker", "transcriber"]
DEPLOYMENT_NAMES: dict[DeploymentName, str] = {
    "ingress": "Ingress",
    "worker": "Worker",
    "transcriber": "Transcriber",
}


class ServeSettings(Settings):
    # /v1/items acts for the operator's jobs: never on buckets nobody listed.
    restrict_buckets: ClassVar[bool] = True

    # HTTP
    host: str = Field("127.0.0.1", description="Address the Serve HTTP proxy listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the Serve HTTP proxy.")
    request_timeout_seconds: float = Field(
        1800.0, gt=0, description="Longest time one HTTP request may take, end to end."
    )
    ready_timeout_seconds: float = Field(
        2.0, gt=0, description="How long /readyz waits for a Transcriber to answer."
    )
    # Credentials (serve.auth): secrets, so a repr or a log line shows '**********'.
    api_token: SecretStr | None = Field(
        None, description="Bearer token of interactive clients (transcription routes)."
    )
    api_token_file: Path | None = Field(
        None, description="File holding the API token; read again when it changes."
    )
    items_token: SecretStr | None = Field(
        None, description="Bearer token of the operator, the only one accepted on /v1/items."
    )
    items_token_file: Path | None = Field(
        None, description="File holding the items token; read again when it changes."
    )
    upload_dir: Path | None = Field(
        None,
        description="Where uploads are spooled and long audio spills (default: system temp); "
        "in a pod, a sized emptyDir.",
    )
    upload_receive_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="An upload must deliver upload_min_bytes_per_second over every period of "
        "this many seconds, or it is cut off (408).",
    )
    upload_min_bytes_per_second: int = Field(
        1024, ge=1, description="Slowest accepted upload rate, averaged per receive period."
    )
    # Admission control, per Ingress replica (serve.admission).
    max_bytes_in_flight: int = Field(
        2 * 1024**3,
        ge=1,
        description="Upload bytes one Ingress replica holds at once (spooled, waiting, being "
        "decoded); past it, 503 with Retry-After.",
    )
    # A server decodes many files at once: keep less of each in memory than one CLI run.
    spill_after_seconds: float = Field(
        120.0, gt=0, description="Decoded audio longer than this is kept on disk, not in memory."
    )
    proxy_max_bytes_in_flight: int = Field(
        512 * 1024**2,
        ge=1,
        description="Request-body bytes one Serve HTTP proxy holds at once (serve.proxy_guard; "
        "from the proxy's environment only); past it, 503 with Retry-After.",
    )
    max_requests_in_flight: int = Field(
        64,
        ge=1,
        description="Requests one Ingress replica works on at once; past it, 503 with Retry-After.",
    )

    # Cross-request batching in the Transcriber (the model batch itself is bounded by
    # `max_batch_segments` and `batch_frames`, shared with the embedded engine).
    batch_wait_seconds: float = Field(
        0.02,
        ge=0,
        le=5,
        description="How long the Transcriber waits for more segments before running a batch.",
    )

    batch_max_padding: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Largest share of a model batch that may be padding; unset: 0.1 on CPU "
        "(where padding costs full price and batching gains little), 0.5 on CUDA.",
    )

    # /v1/items
    item_attempts: int = Field(
        3, ge=1, le=10, description="Tries per item when the object store fails transiently."
    )
    item_backoff_seconds: float = Field(
        0.5,
        ge=0,
        le=60,
        description="Largest first retry delay (jittered); doubles on each further try.",
    )

    # Worker CPU work (decode + VAD) runs on this many threads per Worker replica.
    worker_threads: int = Field(2, ge=1, le=64, description="Decode/VAD threads per Worker.")
    worker_segments_in_flight: int = Field(
        128,
        ge=1,
        description="Segments one Worker replica has at the Transcribers at once, over all "
        "its requests (each up to max_segment_seconds of samples in shared memory).",
    )

    # The web console's jobs view: read-only, and off unless namespaces are named.
    console_jobs_namespaces: str = Field(
        "",
        description="Namespaces whose TranscriptionJobs the console lists (comma-separated, "
        "`*` for all); empty: no jobs view. Needs get/list on transcriptionjobs there.",
    )

    # Deployments
    ingress_min_replicas: int = Field(1, ge=1)
    ingress_max_replicas: int = Field(2, ge=1)
    ingress_target_ongoing_requests: float = Field(64, gt=0)
    ingress_max_ongoing_requests: int = Field(256, ge=1)
    ingress_num_cpus: float = Field(0.5, ge=0)

    worker_min_replicas: int = Field(1, ge=0)
    worker_max_replicas: int = Field(4, ge=1)
    worker_target_ongoing_requests: float = Field(8, gt=0)
    worker_max_ongoing_requests: int = Field(64, ge=1)
    worker_num_cpus: float = Field(1.0, ge=0)

    transcriber_min_replicas: int = Field(
        1, ge=0, description="The floor the operator moves (0 allows scale to zero)."
    )
    transcriber_max_replicas: int = Field(4, ge=1)
    # Ongoing requests of a Transcriber are segments: a few batches' worth queued is normal.
    transcriber_target_ongoing_requests: float = Field(128, gt=0)
    transcriber_max_ongoing_requests: int = Field(512, ge=1)
    transcriber_num_cpus: float = Field(1.0, ge=0)
    transcriber_num_gpus: float = Field(
        0.0, ge=0, description="GPUs per Transcriber replica: 1 in production, 0 on CPU."
    )
    # Serve's own default (600 s) would hold the last GPU replica, and its node, ten
    # minutes after the operator lowered the floor; the operator's scale-down delay
    # already decides when the floor drops, so Serve follows it soon after.
    transcriber_downscale_delay_seconds: float = Field(
        30.0,
        ge=0,
        description="How long Serve waits before removing a Transcriber replica it no "
        "longer needs (each step down, the last one to zero included).",
    )

    # How `hark serve` reaches Ray.
    ray_address: str | None = Field(
        None, description="Ray cluster to join (e.g. auto); default: start a local instance."
    )
    ray_num_cpus: int | None = Field(
        None, ge=1, description="CPUs of the local Ray instance (default: all)."
    )
    metrics_export_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Port the local Ray instance exports metrics on, the Serve app's "
        "`ray_hark_*` included (default: a free port Ray picks; the chart uses 8080).",
    )

    @model_validator(mode="after")
    def _check_bounds(self) -> ServeSettings:
        for name in DEPLOYMENT_NAMES:
            low = getattr(self, f"{name}_min_replicas")
            high = getattr(self, f"{name}_max_replicas")
            if low > high:
                raise ValueError(
                    f"{name}_min_replicas ({low}) is above {name}_max_replicas ({high})"
                )
        for secret in ("api_token", "items_token"):
            if getattr(self, secret) is not None and getattr(self, f"{secret}_file") is not None:
                raise ValueError(
                    f"set HARK_{secret.upper()} or HARK_{secret.upper()}_FILE, not both"
                )
        if self.worker_segments_in_flight < self.max_batch_segments:
            raise ValueError(
                "worker_segments_in_flight must be at least max_batch_segments, or a Worker "
                "can never fill a batch"
            )
        if self.transcriber_max_ongoing_requests < self.max_batch_segments:
            raise ValueError(
                "transcriber_max_ongoing_requests must be at least max_batch_segments, "
                "or a Transcriber can never fill a batch"
            )
        return self

    def deployment_options(self, name: DeploymentName) -> dict[str, Any]:
        """`Deployment.options(...)` for one deployment, from these settings."""
        actor: dict[str, Any] = {"num_cpus": getattr(self, f"{name}_num_cpus")}
        if name == "transcriber":
            actor["num_gpus"] = self.transcriber_num_gpus
        options: dict[str, Any] = {
            "name": DEPLOYMENT_NAMES[name],
            "ray_actor_options": actor,
            "max_ongoing_requests": getattr(self, f"{name}_max_ongoing_requests"),
            "autoscaling_config": {
                "min_replicas": getattr(self, f"{name}_min_replicas"),
                "initial_replicas": max(1, getattr(self, f"{name}_min_replicas")),
                "max_replicas": getattr(self, f"{name}_max_replicas"),
                "target_ongoing_requests": getattr(self, f"{name}_target_ongoing_requests"),
            },
        }
        if name == "transcriber":
            options["autoscaling_config"]["downscale_delay_s"] = (
                self.transcriber_downscale_delay_seconds
            )
            # Batch tuning lives in user_config, so it can change without a restart.
            options["user_config"] = self.batching()
            # Let queued segments finish before a replica goes (scale-down never drops work).
            options["graceful_shutdown_timeout_s"] = 120.0
        if name == "worker":
            options["graceful_shutdown_timeout_s"] = 600.0
        return options

    def batching(self) -> dict[str, Any]:
        return {
            "max_batch_segments": self.max_batch_segments,
            # Unset: the replica picks by its device (batcher.default_batch_frames).
            "batch_frames": self.batch_frames if "batch_frames" in self.model_fields_set else None,
            "batch_wait_seconds": self.batch_wait_seconds,
            "batch_max_padding": self.batch_max_padding,
        }


def load_serve_settings(args: Mapping[str, Any] | None = None) -> ServeSettings:
    """Settings from the environment with `args` on top; `None` values mean "not given"."""
    overrides = {k: v for k, v in (args or {}).items() if v is not None}
    try:
        return ServeSettings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            if field:
                flag = field.replace("_", "-")
                problems.append(
                    f"{field} (--{flag} / HARK_{field.upper()}) = {err.get('input')!r}: "
                    f"{err['msg']}"
                )
            else:
                problems.append(str(err["msg"]))
        raise ConfigError("; ".join(problems)) from exc
