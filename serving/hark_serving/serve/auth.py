"""Bearer-token auth with two credentials, one per identity; probes stay open.

- `HARK_API_TOKEN` (or `HARK_API_TOKEN_FILE`): interactive clients, on the
  transcription routes (`/v1/transcribe`, `/v1/audio/transcriptions`, and any
  other route that does work).
- `HARK_ITEMS_TOKEN` (or `HARK_ITEMS_TOKEN_FILE`): the operator alone, on
  `/v1/items`, which reads and writes objects in the storage profiles' buckets.

Each token works only on its own routes: the API token gets 403 on
`/v1/items`, and the items token gets 403 on the client routes, so a leaked
client token cannot overwrite objects and the operator's token cannot be
used as a general API key. When either token is configured, a route whose
token is not configured is closed (403). With no token at all (a local
`hark serve`), everything is open.

A token read from a file is read again whenever the file changes (a mounted
Secret that was rotated), so pods pick up a new token without a restart.
Probes (kubelet, KubeRay) and Prometheus scrape without credentials.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from hark_serving.errors import ConfigError
from hark_serving.serve.errors import Forbidden, Unauthorized
from hark_serving.serve.settings import ServeSettings

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
ITEMS_PATHS = frozenset({"/v1/items"})

Identity = Literal["client", "items"]


def identity_for(path: str) -> Identity | None:
    """Which credential a route needs; `None` for the open probes."""
    if path in OPEN_PATHS:
        return None
    return "items" if path in ITEMS_PATHS else "client"


class TokenSource:
    """A token given inline or in a file; the file is read again when it changes.

    Kubernetes updates a mounted Secret by swapping a symlink, which changes
    the file's inode and mtime; both are part of the check, so a rotation is
    seen on the next request.
    """

    def __init__(self, name: str, value: SecretStr | None, path: Path | None) -> None:
        if value is not None and path is not None:
            raise ConfigError(f"set HARK_{name} or HARK_{name}_FILE, not both")
        self.name = name
        self._value = value.get_secret_value().strip() if value is not None else None
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()
        if path is not None:
            self._reload(initial=True)

    @property
    def configured(self) -> bool:
        return self._value is not None or self._path is not None

    def _reload(self, *, initial: bool = False) -> None:
        assert self._path is not None
        try:
            st = os.stat(self._path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return
            text = self._path.read_text().strip()
        except OSError as exc:
            if initial:
                raise ConfigError(
                    f"HARK_{self.name}_FILE={self._path}: cannot read the token ({exc})"
                ) from exc
            # A Secret volume mid-update: keep the token we have.
            log.warning("cannot read %s (%s); keeping the previous token", self._path, exc)
            return
        if not text:
            if initial:
                raise ConfigError(f"HARK_{self.name}_FILE={self._path}: the file is empty")
            log.warning("%s is empty; keeping the previous token", self._path)
            return
        if self._stamp is not None and text != self._value:
            log.info("%s changed; using the new token", self._path)
        self._value = text
        self._stamp = stamp

    def get(self) -> str | None:
        if self._path is not None:
            with self._lock:
                self._reload()
        return self._value

    def __repr__(self) -> str:
        where = f"file={str(self._path)!r}" if self._path else "inline"
        return f"TokenSource({self.name}, {where if self.configured else 'unset'})"


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("missing bearer token; send 'Authorization: Bearer <token>'")
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return given.strip()


def _same(given: str, token: str | None) -> bool:
    # Takes the same time wherever the strings differ, so the token cannot be
    # guessed a character at a time from response times.
    return token is not None and hmac.compare_digest(given.encode(), token.encode())


@dataclass(frozen=True)
class Tokens:
    """The two credentials of the HTTP API."""

    api: TokenSource
    items: TokenSource

    @property
    def enabled(self) -> bool:
        return self.api.configured or self.items.configured

    def check(self, path: str, authorization: str | None) -> None:
        """Raise `Unauthorized` (no or unknown token) or `Forbidden` (the other identity's)."""
        identity = identity_for(path)
        if identity is None or not self.enabled:
            return
        given = _bearer(authorization)
        api, items = self.api.get(), self.items.get()
        if identity == "items":
            if _same(given, items):
                return
            if _same(given, api):
                raise Forbidden(
                    f"the API token may not call {path}; it is for the operator, "
                    "which sends HARK_ITEMS_TOKEN"
                )
            if items is None:
                raise Forbidden(f"{path} is closed: no items token (HARK_ITEMS_TOKEN) is set")
        else:
            if _same(given, api):
                return
            if _same(given, items):
                raise Forbidden(
                    f"the items token may only call /v1/items; clients send HARK_API_TOKEN "
                    f"to {path}"
                )
            if api is None:
                raise Forbidden(f"{path} is closed: no API token (HARK_API_TOKEN) is set")
        raise Unauthorized("invalid bearer token")


def tokens_from(settings: ServeSettings) -> Tokens:
    """The credentials of `settings`; a token file that cannot be read fails here, at start."""
    return Tokens(
        TokenSource("API_TOKEN", settings.api_token, settings.api_token_file),
        TokenSource("ITEMS_TOKEN", settings.items_token, settings.items_token_file),
    )
