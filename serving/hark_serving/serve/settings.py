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
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from hark_serving.config import Settings
from hark_serving.errors import ConfigError

DeploymentName = Literal["ingress", "worker", "transcriber"]
DEPLOYMENT_NAMES: dict[DeploymentName, str] = {
    "ingress": "Ingress",
    "worker": "Worker",
    "transcriber": "Transcriber",
}


class ServeSettings(Settings):
    # HTTP
    host: str = Field("127.0.0.1", description="Address the Serve HTTP proxy listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the Serve HTTP proxy.")
    request_timeout_seconds: float = Field(
        1800.0, gt=0, description="Longest time one HTTP request may take, end to end."
    )
    ready_timeout_seconds: float = Field(
        2.0, gt=0, description="How long /readyz waits for a Transcriber to answer."
    )
    upload_dir: Path | None = Field(
        None, description="Where uploads are spooled while they arrive (default: system temp)."
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
        0.5, ge=0, le=60, description="First retry delay; doubles on each further try."
    )

    # Worker CPU work (decode + VAD) runs on this many threads per Worker replica.
    worker_threads: int = Field(2, ge=1, le=64, description="Decode/VAD threads per Worker.")

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

    @model_validator(mode="after")
    def _check_bounds(self) -> ServeSettings:
        for name in DEPLOYMENT_NAMES:
            low = getattr(self, f"{name}_min_replicas")
            high = getattr(self, f"{name}_max_replicas")
            if low > high:
                raise ValueError(
                    f"{name}_min_replicas ({low}) is above {name}_max_replicas ({high})"
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
            "batch_frames": self.batch_frames,
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
