"""Admission control in Ray Serve's HTTP proxy, where request bodies are buffered.

Serve's proxy reads a request body from the socket as fast as it arrives and
queues it in memory until the replica asks for it; nothing pushes back. So a
burst of large uploads sits in the proxy's memory (and again in the replica's
receive queue) however quickly the Ingress spools it to disk. This middleware
runs inside the proxy (Serve loads it from `RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`)
and admits request bodies only while the bytes in flight through this proxy
stay under `proxy_max_bytes_in_flight`; past it, the body is read and thrown
away and the client gets 503 with `Retry-After`, before any of it is queued.

Settings come from the proxy process's `HARK_*` environment (the pod's, or that
of `hark serve`, which sets the callback for the local Ray it starts).
"""

from __future__ import annotations

import json
import logging

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from hark_serving.serve.errors import error_body, status_for
from hark_serving.serve.settings import ServeSettings, load_serve_settings
from hark_serving.serve.uploads import FORM_OVERHEAD

log = logging.getLogger(__name__)

IMPORT_PATH = "hark_serving.serve.proxy_guard.middlewares"
PROXY_CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
RETRY_AFTER_SECONDS = 5


class ProxyAdmission:
    """Bound the request-body bytes one Serve proxy holds at once."""

    def __init__(self, app: ASGIApp, settings: ServeSettings | None = None) -> None:
        self.app = app
        settings = settings or load_serve_settings()
        self.limit = settings.proxy_max_bytes_in_flight
        self.largest = settings.max_upload_bytes + FORM_OVERHEAD
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        size = min(int(declared), self.largest) if declared.isdigit() else self.largest
        if self.in_flight and self.in_flight + size > self.limit:
            log.info(
                "refusing %s %s: %d body bytes in flight, %d more would pass %d",
                scope["method"], scope["path"], self.in_flight, size, self.limit,
            )  # fmt: skip
            await self._discard(receive)
            await self._overloaded(send, size)
            return
        self.in_flight += size
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= size

    async def _discard(self, receive: Receive) -> None:
        """Read the refused body (bounded), so the client reads the answer, not a reset."""
        seen = 0
        while seen <= self.largest:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _overloaded(self, send: Send, size: int) -> None:
        body = json.dumps(
            error_body(
                "overloaded",
                f"{self.in_flight} bytes of request bodies are in progress here; {size} more "
                f"would pass the {self.limit} byte limit; retry after the Retry-After delay",
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status_for("overloaded"),
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def middlewares() -> list[Middleware]:
    """The callback Serve's proxy calls at start (`RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`)."""
    return [Middleware(ProxyAdmission)]
