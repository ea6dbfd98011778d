"""The Serve application `hark`: Ingress → Worker → Transcriber.

`build_app(args)` is the application builder a RayService names:

    applications:
      - name: hark
        route_prefix: /
        import_path: hark_serving.serve.app:build_app
        args: {model: "s3://models/SenseVoiceSmall/", transcriber_num_gpus: 1}

`args` are `ServeSettings` fields; anything not given comes from each
replica's `HARK_*` environment. Each deployment gets its own autoscaling
config; the operator moves the Transcriber's `autoscaling_config.min_replicas`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from ray import serve

from hark_serving.serve.ingress import Ingress
from hark_serving.serve.settings import load_serve_settings
from hark_serving.serve.transcriber import Transcriber
from hark_serving.serve.worker import Worker

APP_NAME = "hark"
ROUTE_PREFIX = "/"


def _deployment(cls: type) -> serve.Deployment:
    # `@serve.deployment` turned the class into a Deployment; type checkers still see the class.
    return cast(serve.Deployment, cls)


def build_app(args: Mapping[str, Any] | None = None) -> serve.Application:
    """The `hark` application; invalid `args` fail here, before anything is deployed."""
    overrides = {k: v for k, v in dict(args or {}).items() if v is not None}
    settings = load_serve_settings(overrides)
    settings.profiles()  # a storage profile without buckets fails here, not in a replica
    transcriber = (
        _deployment(Transcriber)
        .options(**settings.deployment_options("transcriber"))
        .bind(overrides)
    )
    worker = (
        _deployment(Worker)
        .options(**settings.deployment_options("worker"))
        .bind(overrides, transcriber)
    )
    return (
        _deployment(Ingress)
        .options(**settings.deployment_options("ingress"))
        .bind(overrides, worker, transcriber)
    )
