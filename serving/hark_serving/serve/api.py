"""The HTTP API of docs/contracts.md §7 as a FastAPI app over a `Backend`; no Ray here.

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

There is no `/metrics` route: every answer is recorded through `IngressMetrics`,
which the Ingress exports on Ray's metrics port, tagged per replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hark_serving.analytics.alerts import alert_of
from hark_serving.analytics.categories import categorize
from hark_serving.errors import EmptyFile, HarkError, InputError, TooLarge
from hark_serving.options import TranscribeOptions
from hark_serving.runs.itemspec import ItemRequest
from hark_serving.serve import openai_compat
from hark_serving.serve.admission import Admission
from hark_serving.serve.auth import tokens_from
from hark_serving.serve.console import install_console
from hark_serving.serve.context import request_id
from hark_serving.serve.edge import EdgeMiddleware, error_headers, error_response, route_label
from hark_serving.serve.errors import (
    MethodNotAllowed,
    NotReady,
    Overloaded,
    ReportedError,
    RouteNotFound,
    Timeout,
    status_for,
)
from hark_serving.serve.forms import parse_transcribe_form
from hark_serving.serve.messages import ItemReply, ModelStatus, TranscribeReply, UploadJob
from hark_serving.serve.metrics import IngressMetrics, MemoryMetricsAPI
from hark_serving.serve.settings import ServeSettings
from hark_serving.serve.uploads import FORM_OVERHEAD, Upload, discard, paced, receive_upload
from hark_serving.transcript.schema import Transcript
from hark_serving.transcript.writers import CONTENT_TYPES, render

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_ITEM_BODY = 1024 * 1024


class Backend(Protocol):
    async def transcribe(self, job: UploadJob) -> TranscribeReply: ...
    async def process_item(self, req: ItemRequest, rid: str) -> ItemReply: ...
    async def model_status(self) -> ModelStatus: ...


def _validation_message(exc: ValidationError | RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def build_api(
    backend: Backend, settings: ServeSettings, metrics: IngressMetrics | None = None
) -> FastAPI:
    """The routes over `backend`; `metrics` records each answer (in memory when not given)."""
    metrics = metrics or IngressMetrics(MemoryMetricsAPI())
    app = FastAPI(title="Hark", summary="Rich transcripts with SenseVoiceSmall")
    defaults = TranscribeOptions(
        language=settings.language,
        use_itn=settings.use_itn,
        timestamps=settings.timestamps,
        channels=settings.channels,
    )

    def count_error(request: Request, code: str) -> None:
        metrics.error(route_label(request.url.path), code)

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

    admission = Admission(settings.max_bytes_in_flight, settings.max_requests_in_flight)

    def paced_body(request: Request) -> AsyncIterator[bytes]:
        return paced(
            request.stream(),
            window=settings.upload_receive_timeout_seconds,
            min_bytes=int(
                settings.upload_min_bytes_per_second * settings.upload_receive_timeout_seconds
            ),
        )

    @contextlib.asynccontextmanager
    async def received(request: Request) -> AsyncIterator[Upload]:
        """The upload of `request`, spooled to disk, within the replica's admission bounds."""
        limit = settings.max_upload_bytes + FORM_OVERHEAD
        declared = request.headers.get("content-length", "")
        size = min(int(declared), limit) if declared.isdigit() else limit
        try:
            admission.check(size)
        except Overloaded:
            await discard(paced_body(request), limit)
            raise
        with admission.admit(size):
            upload = await receive_upload(
                request.headers,
                paced_body(request),
                max_bytes=settings.max_upload_bytes,
                spool_dir=settings.upload_dir,
            )
            with upload:  # the spool file goes when the request ends, however it ends
                yield upload

    async def run(request: Request, upload: Upload, options: TranscribeOptions) -> Transcript:
        if upload.path is None:
            raise InputError("the multipart field `file` (the audio file) is required")
        if upload.size == 0:
            raise EmptyFile("the file is empty (0 bytes); upload it again", subject=upload.filename)
        if upload.size > settings.max_upload_bytes:  # defensive: receive_upload enforces it
            raise TooLarge(f"the upload is over the {settings.max_upload_bytes} byte limit")
        job = UploadJob(
            upload.filename,
            options,
            upload.md5,
            request_id.get(),
            size=upload.size,
            path=str(upload.path),
        )
        reply = await bounded(backend.transcribe(job))
        if reply.failure is not None:
            raise ReportedError(reply.failure.code, reply.failure.message)
        assert reply.transcript is not None
        return reply.transcript

    @app.post("/v1/transcribe", summary="Transcribe an upload into hark.transcript/v1")
    async def transcribe(request: Request) -> Response:
        async with received(request) as upload:
            fields = {k: upload.value(k) for k in ("language", "use_itn", "timestamps")}
            fields |= {k: upload.value(k) for k in ("channels", "format", "roles", "categories")}
            form = parse_transcribe_form(fields, defaults)
            transcript = await run(request, upload, form.options)
        if form.rules is not None:
            transcript = categorize(form.rules, transcript)
            alert = alert_of(transcript, "")
            if alert is not None:
                metrics.categories_matched(alert.categories)
        if form.format == "json":
            return JSONResponse(transcript.to_json_dict())
        return PlainTextResponse(
            render(transcript, form.format), media_type=CONTENT_TYPES[form.format]
        )

    @app.post("/v1/audio/transcriptions", summary="OpenAI-compatible transcription")
    async def openai_transcriptions(request: Request) -> Response:
        async with received(request) as upload:
            granularities = upload.values("timestamp_granularities[]")
            granularities += upload.values("timestamp_granularities")
            wanted = openai_compat.parse_request(
                upload.value("language"), upload.value("response_format"), granularities
            )
            call = parse_transcribe_form(
                {k: upload.value(k) for k in ("channels", "roles")},
                defaults.model_copy(update={"channels": "mix"}),
            ).options
            options = TranscribeOptions(
                language=wanted.language,
                use_itn=True,
                timestamps="word" if wanted.words else "segment",
                channels=call.channels,
                roles=call.roles,
            )
            transcript = await run(request, upload, options)
        body, media_type = openai_compat.response(transcript, wanted)
        if isinstance(body, dict):
            return JSONResponse(body)
        return PlainTextResponse(body, media_type=media_type)

    @app.post("/v1/items", summary="Transcribe one S3 object into its output objects")
    async def items(request: Request) -> JSONResponse:
        with admission.admit(0):
            return await item(request)

    async def item(request: Request) -> JSONResponse:
        raw = bytearray()
        async for chunk in paced_body(request):
            raw += chunk
            if len(raw) > MAX_ITEM_BODY:
                raise InputError(f"an item request is at most {MAX_ITEM_BODY} bytes of JSON")
        try:
            req = ItemRequest.model_validate_json(bytes(raw))
        except ValidationError as exc:
            raise InputError(f"invalid item request: {_validation_message(exc)}") from None
        reply = await bounded(backend.process_item(req, request_id.get()))
        result = reply.result
        body = result.model_dump(mode="json")
        if result.status == "failed" and result.error is not None:
            code = result.error.code
            count_error(request, code)
            return JSONResponse(body, status_code=status_for(code), headers=error_headers(code))
        return JSONResponse(body)

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: a Transcriber has the model loaded")
    async def readyz() -> dict[str, Any]:
        try:
            status = await asyncio.wait_for(backend.model_status(), settings.ready_timeout_seconds)
        except Exception as exc:  # timeout, or no replica yet
            raise NotReady(f"the model is not ready yet ({type(exc).__name__})") from None
        if not status.ready or status.info is None:
            raise NotReady("the model is still loading")
        return {"status": "ready", "model": status.info.model_dump(mode="json")}

    app.add_middleware(
        EdgeMiddleware, settings=settings, metrics=metrics, tokens=tokens_from(settings)
    )
    install_console(app, settings)  # after the edge: its page is public, its routes are not
    return app
