"""Optional bearer-token auth (`HARK_API_TOKEN`); health and metrics stay open.

Probes (kubelet, KubeRay) and Prometheus scrape without credentials, so only
the endpoints that do work are guarded.
"""

from __future__ import annotations

import hmac

from hark_serving.serve.errors import Unauthorized

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def needs_token(path: str, token: str | None) -> bool:
    return bool(token) and path not in OPEN_PATHS


def check_bearer(authorization: str | None, token: str) -> None:
    """Raise `Unauthorized` unless `authorization` is `Bearer <token>`.

    The comparison takes the same time wherever the strings differ, so the
    token cannot be guessed a character at a time from response times.
    """
    if not authorization:
        raise Unauthorized("missing bearer token; send 'Authorization: Bearer <token>'")
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("invalid bearer token")
