"""Mount the web console on the API app: its static page at `/`, and three small routes.

- `GET /` and `GET /console/<asset>`: the page, from files shipped in this
  package (read once at start, served from memory). Only these files exist;
  every answer carries a Content-Security-Policy that lets the page load and
  call nothing outside its own origin. They are open without a token, like
  `/healthz`: they hold no data, and the page asks for the token before its
  first API call.
- `GET /v1/console/config`: what the page needs to know (jobs view on or off,
  limits, defaults). Behind the API token, so the page learns from its answer
  whether it needs one and whether the one it has is right.
- `POST /v1/console/render?format=srt`: a transcript the page already holds,
  rendered with the API's own writers, so downloads equal `format=` answers
  without transcribing again.
- `GET /v1/jobs`: TranscriptionJobs, read-only (`jobs.JobLister`); off unless
  `HARK_CONSOLE_JOBS_NAMESPACES` names namespaces.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from hark_serving.errors import InputError, InvalidOption
from hark_serving.options import LANGUAGES, OUTPUT_FORMATS
from hark_serving.serve.console.jobs import JobLister, parse_namespaces
from hark_serving.serve.errors import RouteNotFound
from hark_serving.serve.settings import ServeSettings
from hark_serving.transcript.schema import Transcript
from hark_serving.transcript.writers import CONTENT_TYPES, render

ASSET_PREFIX = "/console/"
MAX_RENDER_BODY = 64 * 1024 * 1024

# Same origin only: no CDN, no remote fonts, no inline script; the audio plays from
# `blob:` URLs of the user's own files and recordings.
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "microphone=(self), camera=(), geolocation=()",
    # Revalidate every time (cheap: ETag), so an upgrade is never half old, half new.
    "cache-control": "no-cache",
}
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def load_assets() -> dict[str, Asset]:
    """URL path → asset, for every file under `static/` (index.html is also `/`)."""
    root = resources.files("hark_serving.serve.console").joinpath("static")
    assets: dict[str, Asset] = {}

    def walk(folder: Any, prefix: str) -> None:
        for entry in folder.iterdir():
            name = f"{prefix}{entry.name}"
            if entry.is_dir():
                walk(entry, f"{name}/")
                continue
            suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
            if suffix not in MEDIA_TYPES:
                continue
            body = entry.read_bytes()
            assets[ASSET_PREFIX + name] = Asset(body, MEDIA_TYPES[suffix], _etag(body))

    walk(root, "")
    if ASSET_PREFIX + "index.html" not in assets:
        raise RuntimeError("the console's index.html is missing from the package")
    assets["/"] = assets[ASSET_PREFIX + "index.html"]
    return assets


class ConsoleAssets:
    """Serves the console's files before anything else sees the request.

    It wraps the app outside the edge middleware: the files are public (no
    token), and nothing else can be reached through this class, because it
    answers only paths in its table and passes every other request on.
    """

    def __init__(self, app: ASGIApp, assets: dict[str, Asset]) -> None:
        self.app = app
        self.assets = assets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        asset = None
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            asset = self.assets.get(scope["path"])
        if asset is None:
            await self.app(scope, receive, send)
            return
        headers = {**SECURITY_HEADERS, "etag": asset.etag}
        if Headers(scope=scope).get("if-none-match") == asset.etag:
            await Response(status_code=304, headers=headers)(scope, receive, send)
            return
        body = b"" if scope["method"] == "HEAD" else asset.body
        response = Response(body, media_type=asset.media_type, headers=headers)
        if scope["method"] == "HEAD":
            response.headers["content-length"] = str(len(asset.body))
        await response(scope, receive, send)


async def _read_body(request: Request, limit: int) -> bytes:
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise InputError(f"a transcript to render is at most {limit} bytes of JSON")
    return bytes(raw)


def install_console(app: FastAPI, settings: ServeSettings) -> None:
    """Add the console to `app`; call it last, after the edge middleware was added."""
    namespaces = parse_namespaces(settings.console_jobs_namespaces)
    lister = JobLister(namespaces) if namespaces else None

    @app.get("/v1/console/config", summary="What the web console needs to know")
    async def console_config() -> dict[str, Any]:
        return {
            "jobs": lister is not None,
            "max_upload_bytes": settings.max_upload_bytes,
            "max_audio_seconds": settings.max_audio_seconds,
            "languages": list(LANGUAGES),
            "formats": list(OUTPUT_FORMATS),
            "defaults": {
                "language": settings.language,
                "use_itn": settings.use_itn,
                "timestamps": settings.timestamps,
                "channels": settings.channels,
            },
        }

    @app.post("/v1/console/render", summary="Render a hark.transcript/v1 document as a format")
    async def console_render(request: Request, format: str = "srt") -> Response:
        fmt = format.strip().lower()
        if fmt not in OUTPUT_FORMATS:
            raise InvalidOption(
                f"unknown format {format!r}; choose from {', '.join(OUTPUT_FORMATS)}",
                subject="format",
            )
        raw = await _read_body(request, MAX_RENDER_BODY)
        try:
            transcript = Transcript.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
            where = ".".join(str(p) for p in first.get("loc", ())) or "(document)"
            raise InputError(
                f"the body is not a hark.transcript/v1 document: {where}: {first.get('msg')}"
            ) from None
        text = render(transcript, fmt)
        if fmt == "json":
            return Response(text, media_type="application/json")
        return PlainTextResponse(text, media_type=CONTENT_TYPES[fmt])

    @app.get("/v1/jobs", summary="TranscriptionJobs with their progress (read-only)")
    async def jobs() -> JSONResponse:
        if lister is None:
            raise RouteNotFound(
                "the jobs view is off; set HARK_CONSOLE_JOBS_NAMESPACES (chart value "
                "console.jobs.enabled) to the namespaces to list"
            )
        return JSONResponse({"namespaces": list(namespaces), "jobs": await lister.rows()})

    assets = load_assets()
    # Public on purpose: the page must know whether to ask for a token before it calls
    # anything guarded (a 401 in the browser's console is an error the user would see).
    auth = json.dumps({"token_required": bool(settings.api_token)}).encode()
    assets[ASSET_PREFIX + "auth.json"] = Asset(auth, MEDIA_TYPES[".json"], _etag(auth))
    app.add_middleware(ConsoleAssets, assets=assets)
