"""The production scaler: the Transcriber's floor inside a KubeRay RayService.

`spec.serveConfigV2` is a YAML string. The scaler parses it, sets the
Transcriber's `autoscaling_config.min_replicas`, and writes the string back
with a JSON merge patch guarded by the resourceVersion it read (a concurrent
edit gives 409 and a fresh read). KubeRay applies serveConfigV2 changes to the
running cluster in place; Ray Serve then asks the Ray autoscaler for GPU
pods. `workerGroupSpecs` are never touched: KubeRay ignores replica edits
there, and the autoscaler owns them. YAML comments inside serveConfigV2 do not
survive the rewrite.
"""

from __future__ import annotations

import logging
from typing import Any

import yaml

from hark_operator.clients.kube import KubeClient, is_conflict, is_not_found
from hark_operator.errors import ScalerError
from hark_operator.resource.models import ObjectRef
from hark_operator.scaling.backends import get_floor, set_floor

log = logging.getLogger(__name__)

RAY_GROUP, RAY_VERSION, RAY_PLURAL = "ray.io", "v1", "rayservices"
CONFLICT_RETRIES = 4


def _config(obj: dict[str, Any], where: str) -> dict[str, Any]:
    text = (obj.get("spec") or {}).get("serveConfigV2")
    if not text:
        raise ScalerError(f"RayService {where} has no spec.serveConfigV2")
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScalerError(f"RayService {where}: serveConfigV2 is not valid YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise ScalerError(f"RayService {where}: serveConfigV2 is not a mapping")
    return config


class KubeRayScaler:
    name = "kuberay"

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        name: str,
        *,
        app: str = "hark",
        deployment: str = "Transcriber",
        max_replicas: int = 4,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.rayservice = name
        self.app = app
        self.deployment = deployment
        self.max_replicas = max_replicas
        self._uid: str | None = None

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.rayservice}"

    async def _get(self) -> dict[str, Any]:
        try:
            obj = await self.kube.get_object(
                RAY_GROUP, RAY_VERSION, RAY_PLURAL, self.namespace, self.rayservice
            )
        except Exception as exc:
            if is_not_found(exc):
                raise ScalerError(f"RayService {self.where} does not exist") from exc
            raise
        self._uid = obj.get("metadata", {}).get("uid")
        return obj

    async def current(self) -> int | None:
        return get_floor(_config(await self._get(), self.where), self.app, self.deployment)

    async def apply(self, floor: int) -> int:
        for _ in range(CONFLICT_RETRIES):
            obj = await self._get()
            config = _config(obj, self.where)
            written = set_floor(config, self.app, self.deployment, floor, self.max_replicas)
            text = yaml.safe_dump(config, sort_keys=False)
            if text == obj["spec"]["serveConfigV2"]:
                return written
            patch = {
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "spec": {"serveConfigV2": text},
            }
            try:
                await self.kube.patch_object(
                    RAY_GROUP, RAY_VERSION, RAY_PLURAL, self.namespace, self.rayservice, patch
                )
                return written
            except Exception as exc:
                if not is_conflict(exc):
                    raise
                log.debug("RayService %s changed meanwhile; reading it again", self.where)
        raise ScalerError(f"RayService {self.where} kept changing; floor not written")

    def target(self) -> ObjectRef | None:
        return ObjectRef(
            f"{RAY_GROUP}/{RAY_VERSION}", "RayService", self.namespace, self.rayservice, self._uid
        )
