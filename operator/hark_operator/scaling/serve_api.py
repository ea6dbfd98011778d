"""The floor on a plain Ray cluster, through the Serve REST API of its dashboard.

`GET /api/serve/applications/` returns every application with the config it
was deployed from; the scaler edits the Transcriber's floor in that config and
`PUT`s the whole declarative config back (the API replaces all applications
at once, so each one is sent as it was). Applications deployed from Python
(`serve.run`) have no declarative config and cannot be round-tripped.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx

from hark_operator.errors import ScalerError
from hark_operator.resource.models import ObjectRef
from hark_operator.scaling.backends import get_floor, set_floor

PATH = "/api/serve/applications/"
HTTP_OPTION_KEYS = ("host", "port", "root_path", "request_timeout_s", "keep_alive_timeout_s")


class ServeApiScaler:
    name = "serve-api"

    def __init__(
        self,
        dashboard_url: str,
        *,
        app: str = "hark",
        deployment: str = "Transcriber",
        max_replicas: int = 4,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = dashboard_url.rstrip("/") + PATH
        self.app = app
        self.deployment = deployment
        self.max_replicas = max_replicas
        self.client = client or httpx.AsyncClient(timeout=30.0)

    async def _details(self) -> dict[str, Any]:
        try:
            r = await self.client.get(self.url)
        except httpx.TransportError as exc:
            raise ScalerError(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        if r.status_code != 200:
            raise ScalerError(f"{self.url} answered {r.status_code}: {r.text[:200]}")
        details: dict[str, Any] = r.json()
        return details

    def _config(self, details: dict[str, Any]) -> dict[str, Any]:
        apps = []
        for name, app in (details.get("applications") or {}).items():
            deployed = app.get("deployed_app_config")
            if not deployed:
                raise ScalerError(
                    f"Serve application {name!r} was not deployed from a config; "
                    "the serve-api scaler can only edit declaratively deployed applications"
                )
            apps.append(copy.deepcopy(deployed))
        config: dict[str, Any] = {"applications": apps}
        http = details.get("http_options") or {}
        config["http_options"] = {k: http[k] for k in HTTP_OPTION_KEYS if k in http}
        if details.get("proxy_location"):
            config["proxy_location"] = details["proxy_location"]
        return config

    async def current(self) -> int | None:
        return get_floor(self._config(await self._details()), self.app, self.deployment)

    async def apply(self, floor: int) -> int:
        config = self._config(await self._details())
        before = copy.deepcopy(config)
        written = set_floor(config, self.app, self.deployment, floor, self.max_replicas)
        if config == before:
            return written
        try:
            r = await self.client.put(self.url, json=config)
        except httpx.TransportError as exc:
            raise ScalerError(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        if r.status_code >= 300:
            raise ScalerError(f"{self.url} refused the config ({r.status_code}): {r.text[:300]}")
        return written

    def target(self) -> ObjectRef | None:
        return None

    async def aclose(self) -> None:
        await self.client.aclose()
