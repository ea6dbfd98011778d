"""The operator's one settings object, read from `HARK_*` environment variables.

Names are pinned in docs/architecture.md ("Operator settings"); a bad value
fails at start with the variable and the value it had. `hark operator` flags
override fields of this object, they never keep a default of their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import NoDecode

from hark_operator.scaling.policy import ScalingPolicy
from hark_serving.errors import ConfigError
from hark_serving.storage.settings import StorageSettings, split_list

SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _own_namespace() -> str:
    try:
        return SA_NAMESPACE_FILE.read_text().strip() or "default"
    except OSError:
        return "default"


class OperatorSettings(StorageSettings):
    """`HARK_*` of the operator (prefix, strictness and object storage from StorageSettings)."""

    # Processing
    processor: Literal["serve", "inprocess"] = Field(
        "serve",
        description="serve: POST /v1/items to the Serve app; inprocess: run the engine here.",
    )
    serve_url: str = Field(
        "http://hark-serve:8000", description="Base URL of the Serve application `hark`."
    )
    items_token: SecretStr | None = Field(
        None, description="Bearer token for /v1/items (the Serve app's HARK_ITEMS_TOKEN)."
    )
    items_token_file: Path | None = Field(
        None, description="File holding the items token (a mounted Secret)."
    )
    items_token_secret: str | None = Field(
        None,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/[-._a-zA-Z0-9]+)?$",
        description="Secret (`name` or `name/key`, key `token` by default) in the operator's "
        "namespace holding the items token; read again whenever the app refuses it, so a "
        "fixed or rotated token is used without a restart. Wins over HARK_ITEMS_TOKEN[_FILE].",
    )
    max_in_flight: int = Field(32, ge=1, le=10000, description="Items in flight over all jobs.")
    item_timeout_seconds: float = Field(
        3600.0, gt=0, description="Give up on one try of an item after this long."
    )
    stall_check_seconds: float = Field(
        30.0,
        gt=0,
        description="With items in flight and no answer for this long, ask whether the Serve "
        "app is still deployed; when it is not, the tries in flight are lost (a request that "
        "waited at Ray's proxy for an app deleted meanwhile is never answered) and go back to "
        "the queue, attempts unspent.",
    )
    retry_base_seconds: float = Field(
        2.0, ge=0, description="Largest first retry delay (full jitter); doubles each try."
    )
    retry_max_seconds: float = Field(
        300.0, ge=0, description="Cap on every retry delay (items, paused dispatch, scans)."
    )
    status_interval_seconds: float = Field(
        2.0, gt=0, description="How often a job's status is written while it changes."
    )

    # Scaling (docs/contracts.md §8)
    scaler: Literal["kuberay", "serve-api", "inprocess", "none"] = Field(
        "none", description="Where the GPU replica floor is written."
    )
    rayservice_name: str = Field("hark", description="RayService the kuberay scaler patches.")
    rayservice_namespace: str | None = Field(
        None, description="Its namespace; the operator's own when unset."
    )
    ray_dashboard_url: str | None = Field(
        None, description="Ray dashboard for the serve-api scaler (http://head:8265)."
    )
    serve_app_name: str = Field("hark", description="Serve application holding the Transcriber.")
    transcriber_deployment: str = Field("Transcriber", description="Deployment whose floor moves.")
    scale_min_replicas: int = Field(0, ge=0, description="Lowest floor (0: scale to zero).")
    scale_max_replicas: int = Field(4, ge=0, le=1000, description="Highest floor.")
    items_per_replica: float = Field(8.0, gt=0, description="Backlog items one replica absorbs.")
    scale_down_delay_seconds: float = Field(
        300.0, ge=0, description="A level of the floor goes after this long without need."
    )
    scale_interval_seconds: float = Field(10.0, gt=0, description="How often the floor is set.")

    # Bucket notifications (operator/hark_operator/notifications.py)
    notify_port: int = Field(
        0, ge=0, le=65535, description="Port of the bucket notification receiver; 0: none."
    )
    notify_token: str | None = Field(
        None, description="Bearer token the object store sends with each notification."
    )

    # Call analytics (docs/analytics.md)
    webhook_url: str | None = Field(
        None,
        pattern=r"^(https?://.+)?$",
        description="Where alerts of `alert: true` categories of every job are posted (signed "
        "JSON, at least once, through each job's outbox in S3); unset or empty: Events and "
        "metrics only.",
    )
    webhook_secret: SecretStr | None = Field(
        None, description="Shared secret of the alert webhook's HMAC-SHA256 signature."
    )
    report_interval_seconds: float = Field(
        60.0,
        gt=0,
        description="A job's QA report is rewritten at most this often while calls finish.",
    )

    # Scope and identity
    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Namespaces to watch, comma-separated; empty: all."
    )
    operator_namespace: str = Field(
        default_factory=_own_namespace,
        description="The operator's namespace; storage profile Secrets are read only there.",
    )
    peering_name: str = Field("hark", description="kopf peering object shared by the replicas.")
    standalone: bool = Field(False, description="Run without peering (one replica, or tests).")
    peering_lifetime_seconds: int = Field(
        60, ge=5, le=3600, description="A silent replica counts as gone after this long."
    )
    priority: int | None = Field(
        None, description="Peering priority; random when unset, so replicas never tie."
    )
    health_port: int = Field(8080, ge=0, le=65535, description="/healthz port; 0: none.")
    metrics_port: int = Field(9090, ge=0, le=65535, description="/metrics port; 0: none.")

    # Object storage: profiles, or one default profile from the HARK_S3_* fallback
    # (fields inherited from StorageSettings)
    credentials_refresh_seconds: float = Field(
        300.0, gt=0, description="Re-read profile Secrets this often (rotated keys)."
    )

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        return split_list(value)

    @model_validator(mode="after")
    def _bounds(self) -> OperatorSettings:
        if self.scale_min_replicas > self.scale_max_replicas:
            raise ValueError("HARK_SCALE_MIN_REPLICAS must not exceed HARK_SCALE_MAX_REPLICAS")
        if self.items_token is not None and self.items_token_file is not None:
            raise ValueError("set HARK_ITEMS_TOKEN or HARK_ITEMS_TOKEN_FILE, not both")
        if self.scaler == "serve-api" and not self.ray_dashboard_url:
            raise ValueError("HARK_SCALER=serve-api needs HARK_RAY_DASHBOARD_URL")
        if self.webhook_url and not self.webhook_secret_value():
            raise ValueError("HARK_WEBHOOK_URL needs HARK_WEBHOOK_SECRET to sign the alerts with")
        return self

    def webhook_secret_value(self) -> str:
        return self.webhook_secret.get_secret_value().strip() if self.webhook_secret else ""

    def items_token_value(self) -> str | None:
        """The items token, from the variable or the file; ConfigError naming the file."""
        if self.items_token is not None:
            return self.items_token.get_secret_value().strip() or None
        if self.items_token_file is None:
            return None
        try:
            return self.items_token_file.read_text().strip() or None
        except OSError as exc:
            raise ConfigError(
                f"HARK_ITEMS_TOKEN_FILE={self.items_token_file}: cannot read the token ({exc})"
            ) from exc

    def scaling_policy(self) -> ScalingPolicy:
        return ScalingPolicy(
            items_per_replica=self.items_per_replica,
            min_replicas=self.scale_min_replicas,
            max_replicas=self.scale_max_replicas,
            scale_down_delay_seconds=self.scale_down_delay_seconds,
        )


def load_operator_settings(**overrides: object) -> OperatorSettings:
    """Settings from the environment with `overrides` (CLI flags) on top; ConfigError
    naming the variable and its value when one is wrong."""
    try:
        return OperatorSettings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"HARK_{field.upper()}={err.get('input')!r}: {msg}" if field else msg)
        raise ConfigError("; ".join(problems)) from exc
