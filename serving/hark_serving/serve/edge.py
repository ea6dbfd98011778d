"""The edge of every HTTP request: request id, bearer auth, metrics, error answers.

`EdgeMiddleware` wraps the whole FastAPI app, so an answer that never reaches
a route (a missing token, an unhandled bug) still gets the JSON error shape,
a request id and a place in the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hark_serving.errors import HarkError
from hark_serving.serve.auth import Tokens
from hark_serving.serve.context import new_request_id, request_id
from hark_serving.serve.errors import RETRYABLE_CODES, error_body, status_for
from hark_serving.serve.metrics import IngressMetrics
from hark_serving.serve.settings import ServeSettings

log = logging.getLogger(__name__)

ROUTES = frozenset(
    {"/v1/transcribe", "/v1/audio/transcriptions", "/v1/items", "/healthz", "/readyz"}
)
QUIET_ROUTES = frozenset({"/healthz", "/readyz"})


def route_label(path: str) -> str:
    """A bounded label for metrics: the route, or `other`."""
    return path if path in ROUTES else "other"


def error_headers(code: str) -> dict[str, str]:
    headers = {}
    if status_for(code) == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="hark"'
    if code in RETRYABLE_CODES:
        headers["Retry-After"] = "5"
    return headers


def error_response(code: str, message: str) -> JSONResponse:
    return JSONResponse(
        error_body(code, message), status_code=status_for(code), headers=error_headers(code)
    )


class EdgeMiddleware:
    """Request id, bearer auth, metrics and a last-resort 500 for every HTTP request."""

    def __init__(
        self, app: ASGIApp, settings: ServeSettings, metrics: IngressMetrics, tokens: Tokens
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        given = headers.get("x-request-id")
        rid = new_request_id(given)
        # Serve's proxy puts its request id in the request and echoes it in the response;
        # answer with the id only where nobody else will.
        echo = given is None or rid != given
        token = request_id.set(rid)
        route = route_label(scope["path"])
        method = scope["method"]
        status = 500
        started_response = False
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                if echo:
                    message["headers"] = [
                        *message.get("headers", []),
                        (b"x-request-id", rid.encode()),
                    ]
            await send(message)

        self.metrics.started(route)
        try:
            self.tokens.check(scope["path"], headers.get("authorization"))
            await self.app(scope, receive, send_with_id)
        except HarkError as exc:
            self.metrics.error(route, exc.code)
            await error_response(exc.code, str(exc))(scope, receive, send_with_id)
        except asyncio.CancelledError:
            if not started_response:
                status = 499  # the client went away first (nginx's code for it)
            raise
        except Exception:
            log.exception("unhandled error on %s %s", method, scope["path"])
            if not started_response:
                self.metrics.error(route, "internal")
                response = error_response("internal", "internal error; see the server logs")
                await response(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - began
            self.metrics.answered(route, method, status, elapsed)
            # Probes come every few seconds; keep them out of INFO logs.
            level = logging.DEBUG if route in QUIET_ROUTES and status < 400 else logging.INFO
            log.log(level, "%s %s %d %.3fs", method, scope["path"], status, elapsed)
            request_id.reset(token)
