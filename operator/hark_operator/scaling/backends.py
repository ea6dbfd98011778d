"""Where the GPU replica floor goes: one interface, several backends.

    kuberay     patch the RayService's serveConfigV2 (scaling/kuberay.py)
    serve-api   PUT the Serve config to a plain Ray cluster's dashboard (scaling/serve_api.py)
    inprocess   the embedded runner's worker count
    none        decide and report, write nothing

Both Ray backends edit the same thing, the `autoscaling_config.min_replicas`
of the Transcriber deployment inside a Serve config; `set_floor` does that
edit on plain data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from hark_operator.errors import ScalerError
from hark_operator.resource.models import ObjectRef


class Scaler(Protocol):
    name: str

    async def current(self) -> int | None:
        """The floor in place, or None when the backend cannot tell."""
        ...

    async def apply(self, floor: int) -> int:
        """Set the floor; returns the floor actually written (bounds of the config apply)."""
        ...

    def target(self) -> ObjectRef | None:
        """The object scale Events belong to, if any."""
        ...


def _deployment(app: dict[str, Any], deployment: str, create: bool) -> dict[str, Any] | None:
    deployments = app.setdefault("deployments", []) if create else app.get("deployments") or []
    for d in deployments:
        if isinstance(d, dict) and d.get("name") == deployment:
            return d
    if not create:
        return None
    entry: dict[str, Any] = {"name": deployment}
    deployments.append(entry)
    return entry


def _application(config: dict[str, Any], app_name: str) -> dict[str, Any]:
    for app in config.get("applications") or []:
        if isinstance(app, dict) and app.get("name") == app_name:
            return app
    raise ScalerError(f"the Serve config has no application named {app_name!r}")


def get_floor(config: dict[str, Any], app_name: str, deployment: str) -> int | None:
    d = _deployment(_application(config, app_name), deployment, create=False)
    if d is None:
        return None
    auto = d.get("autoscaling_config") or {}
    value = auto.get("min_replicas")
    return int(value) if value is not None else None


def set_floor(
    config: dict[str, Any], app_name: str, deployment: str, floor: int, max_replicas: int
) -> int:
    """Set the deployment's `autoscaling_config.min_replicas` in a Serve config, in place.

    A deployment the config does not list yet gets an entry (Serve merges it
    with the options in code); its max defaults to `max_replicas`. The floor
    never exceeds the config's own `max_replicas`. Returns the floor written.
    """
    d = _deployment(_application(config, app_name), deployment, create=True)
    assert d is not None
    fixed = d.get("num_replicas")
    if fixed is not None and fixed != "auto":
        raise ScalerError(
            f"deployment {deployment} has a fixed num_replicas={fixed}; "
            "give it an autoscaling_config so its floor can move"
        )
    auto = d.setdefault("autoscaling_config", {})
    if not isinstance(auto, dict):
        raise ScalerError(f"deployment {deployment}: autoscaling_config is not a mapping")
    ceiling = int(auto.setdefault("max_replicas", max(max_replicas, 1)))
    written = max(0, min(floor, ceiling))
    auto["min_replicas"] = written
    initial = auto.get("initial_replicas")
    if initial is not None and int(initial) < written:
        auto["initial_replicas"] = written  # Serve rejects initial below min
    return written


class NoScaler:
    """Decides and reports, writes nothing (HARK_SCALER=none)."""

    name = "none"

    def __init__(self) -> None:
        self.floor: int | None = None

    async def current(self) -> int | None:
        return self.floor

    async def apply(self, floor: int) -> int:
        self.floor = floor
        return floor

    def target(self) -> ObjectRef | None:
        return None


class InProcessScaler:
    """The embedded mode: the floor is how many items run at once in this process."""

    name = "inprocess"

    def __init__(self, set_workers: Callable[[int], Awaitable[None]], workers: int) -> None:
        self._set = set_workers
        self.floor: int | None = workers

    async def current(self) -> int | None:
        return self.floor

    async def apply(self, floor: int) -> int:
        await self._set(floor)
        self.floor = floor
        return floor

    def target(self) -> ObjectRef | None:
        return None
