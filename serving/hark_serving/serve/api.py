"""The HTTP API of DESIGN.md §7 as a FastAPI app over a `Backend`; no Ray here.

The Ingress deployment is the production `Backend` (it forwards to Worker
replicas); tests can pass any object with the same three methods.

Answers:
- `POST /v1/transcribe` → `hark.transcript/v1` JSON, or SRT / VTT / TXT (`format`).
- `POST /v1/audio/transcriptions` → OpenAI's shapes (`openai_compat`).
- `POST /v1/items` → an `ItemResult`: 200 when it succeeded or was skipped;
  when it failed, the status of its error code, with the same `ItemResult`
  body, whose `error` is the usual `{"code", "message"}`. A failure the input
  caused is recorded as `<output>.error.json` first (`items.ItemRunner`).
- Every other error: the status of its code (`errors.STATUS_BY_CODE`) and
  `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import EmptyFile, HarkError, InputError, TooLarge
from ..itemspec import ItemRequest
from ..options import TranscribeOptions
from ..schema import Transcript
from ..writers import CONTENT_TYPES, render
from . import openai_compat
from .auth import check_bearer, needs_token
from .context import new_request_id, request_id
from .errors import (
    RETRYABLE_CODES,
    MethodNotAllowed,
    NotReady,
    ReportedError,
    RouteNotFound,
    Timeout,
    error_body,
    status_for,
)
from .forms import parse_transcribe_form
from .messages import ItemReply, ModelStatus, TranscribeReply, UploadJob
from .metrics import CONTENT_TYPE, Metrics
from .settings import ServeSettings
from .uploads import Upload, receive_upload

log = logging.getLogger(__name__)

T = TypeVar("T")

ROUTES = frozenset(
    {"/v1/transcribe", "/v1/audio/transcriptions", "/v1/items", "/healthz", "/readyz", "/metrics"}
)
MAX_ITEM_BODY = 1024 * 1024


class Backend(Protocol):
    async def transcribe(self, job: UploadJob) -> TranscribeReply: ...
    async def process_item(self, req: ItemRequest, rid: str) -> ItemReply: ...
    async def model_status(self) -> ModelStatus: ...


def route_label(path: str) -> str:
    """A bounded label for metrics: the route, or `other`."""
    return path if path in ROUTES else "other"


def error_response(code: str, message: str) -> JSONResponse:
    status = status_for(code)
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="hark"'
    if code in RETRYABLE_CODES:
        headers["Retry-After"] = "5"
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


class EdgeMiddleware:
    """Request id, bearer auth, metrics and a last-resort 500 for every HTTP request."""

    def __init__(self, app: ASGIApp, settings: ServeSettings, metrics: Metrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics

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

        gauge = self.metrics.in_flight.labels(route)
        gauge.inc()
        try:
            if needs_token(scope["path"], self.settings.api_token):
                check_bearer(headers.get("authorization"), self.settings.api_token or "")
            await self.app(scope, receive, send_with_id)
        except HarkError as exc:
            self.metrics.errors.labels(route, exc.code).inc()
            await error_response(exc.code, str(exc))(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error on %s %s", method, scope["path"])
            if not started_response:
                self.metrics.errors.labels(route, "internal").inc()
                response = error_response("internal", "internal error; see the server logs")
                await response(scope, receive, send_with_id)
        finally:
            gauge.dec()
            elapsed = time.perf_counter() - began
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            log.info("%s %s %d %.3fs", method, scope["path"], status, elapsed)
            request_id.reset(token)


def _validation_message(exc: ValidationError | RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def build_api(backend: Backend, settings: ServeSettings, metrics: Metrics | None = None) -> FastAPI:
    metrics = metrics or Metrics()
    app = FastAPI(title="Hark", summary="Rich transcripts with SenseVoiceSmall")
    defaults = TranscribeOptions(
        language=settings.language,
        use_itn=settings.use_itn,
        timestamps=settings.timestamps,
        channels=settings.channels,
    )

    def count_error(request: Request, code: str) -> None:
        metrics.errors.labels(route_label(request.url.path), code).inc()

    @app.exception_handler(HarkError)
    async def on_hark_error(request: Request, exc: HarkError) -> JSONResponse:
        count_error(request, exc.code)
        return error_response(exc.code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        count_error(request, "invalid_input")
        return error_response("invalid_input", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error: HarkError
        if exc.status_code == 404:
            error = RouteNotFound(f"no route {request.method} {request.url.path}")
        elif exc.status_code == 405:
            error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
        else:
            error = InputError(str(exc.detail))
        count_error(request, error.code)
        return error_response(error.code, str(error))

    async def bounded(call: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(call, settings.request_timeout_seconds)
        except asyncio.TimeoutError:
            raise Timeout(
                f"no answer within {settings.request_timeout_seconds:g} s; try again later"
            ) from None

    async def receive(request: Request) -> Upload:
        return await receive_upload(
            request.headers,
            request.stream(),
            max_bytes=settings.max_upload_bytes,
            spool_dir=settings.upload_dir,
        )

    async def run(request: Request, upload: Upload, options: TranscribeOptions) -> Transcript:
        if upload.path is None:
            raise InputError("the multipart field `file` (the audio file) is required")
        if upload.size == 0:
            raise EmptyFile("the file is empty (0 bytes); upload it again", subject=upload.filename)
        if upload.size > settings.max_upload_bytes:  # defensive: receive_upload enforces it
            raise TooLarge(f"the upload is over the {settings.max_upload_bytes} byte limit")
        data = await asyncio.to_thread(upload.read)
        job = UploadJob(data, upload.filename, options, upload.md5, request_id.get())
        reply = await bounded(backend.transcribe(job))
        metrics.observe_batches(reply.batches)
        if reply.failure is not None:
            raise ReportedError(reply.failure.code, reply.failure.message)
        assert reply.transcript is not None
        metrics.audio_seconds.labels(request.url.path).inc(reply.transcript.source.duration)
        return reply.transcript

    @app.post("/v1/transcribe", summary="Transcribe an upload into hark.transcript/v1")
    async def transcribe(request: Request) -> Response:
        with await receive(request) as upload:
            fields = {k: upload.value(k) for k in ("language", "use_itn", "timestamps")}
            fields |= {k: upload.value(k) for k in ("channels", "format")}
            form = parse_transcribe_form(fields, defaults)
            transcript = await run(request, upload, form.options)
        if form.format == "json":
            return JSONResponse(transcript.to_json_dict())
        return PlainTextResponse(
            render(transcript, form.format), media_type=CONTENT_TYPES[form.format]
        )

    @app.post("/v1/audio/transcriptions", summary="OpenAI-compatible transcription")
    async def openai_transcriptions(request: Request) -> Response:
        with await receive(request) as upload:
            granularities = upload.values("timestamp_granularities[]")
            granularities += upload.values("timestamp_granularities")
            wanted = openai_compat.parse_request(
                upload.value("language"), upload.value("response_format"), granularities
            )
            options = TranscribeOptions(
                language=wanted.language,
                use_itn=True,
                timestamps="word" if wanted.words else "segment",
            )
            transcript = await run(request, upload, options)
        body, media_type = openai_compat.response(transcript, wanted)
        if isinstance(body, dict):
            return JSONResponse(body)
        return PlainTextResponse(body, media_type=media_type)

    @app.post("/v1/items", summary="Transcribe one S3 object into its output objects")
    async def items(request: Request) -> JSONResponse:
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_ITEM_BODY:
                raise InputError(f"an item request is at most {MAX_ITEM_BODY} bytes of JSON")
        try:
            req = ItemRequest.model_validate_json(bytes(raw))
        except ValidationError as exc:
            raise InputError(f"invalid item request: {_validation_message(exc)}") from None
        reply = await bounded(backend.process_item(req, request_id.get()))
        metrics.observe_batches(reply.batches)
        result = reply.result
        metrics.items.labels(result.status).inc()
        if result.status == "succeeded":
            metrics.audio_seconds.labels("/v1/items").inc(result.audio_seconds)
        status = 200
        if result.status == "failed" and result.error is not None:
            status = status_for(result.error.code)
            count_error(request, result.error.code)
        return JSONResponse(result.model_dump(mode="json"), status_code=status)

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: a Transcriber has the model loaded")
    async def readyz() -> dict[str, Any]:
        try:
            status = await asyncio.wait_for(backend.model_status(), settings.ready_timeout_seconds)
        except Exception as exc:  # timeout, or no replica yet
            metrics.model_ready.set(0)
            raise NotReady(f"the model is not ready yet ({type(exc).__name__})") from None
        if not status.ready or status.info is None:
            metrics.model_ready.set(0)
            raise NotReady("the model is still loading")
        metrics.model_ready.set(1)
        metrics.model_load_seconds.set(status.load_seconds)
        return {"status": "ready", "model": status.info.model_dump(mode="json")}

    @app.get("/metrics", summary="Prometheus metrics of this Ingress replica")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    app.add_middleware(EdgeMiddleware, settings=settings, metrics=metrics)
    return app
