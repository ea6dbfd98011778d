"""`POST /v1/items` on the Serve application: one S3 object per call.

The body is `hark_serving.runs.itemspec.ItemRequest`, the answer an `ItemResult`,
also when the item failed (then with the HTTP status of its error code).
What the answer means for a retry:

- an `ItemResult` body: it says (`retryable` marks failures that may pass;
  a 5xx result is always worth another try);
- connection errors, timeouts, and 429 or 5xx without a result (a replica
  died, the app is starting or overloaded): `ProcessorUnavailable`, retried;
- 401, 403 without a result: the app refuses the operator's token:
  `ProcessorRefused` (a `ProcessorUnavailable`); dispatch pauses until it is
  fixed (a token Secret is read again before the next try);
- 404 without a result: no app at that route (not deployed yet, being
  replaced, or a wrong URL): `ProcessorUnavailable`;
- other 4xx without a result: the request itself is wrong: a failed result,
  not retried.

The client is aiohttp's: one request per item at up to HARK_MAX_IN_FLIGHT at
once, on kept-alive connections that it finds without scanning its pool (the
httpx pool looked at every connection, and polled each idle socket, for every
request: most of the operator's CPU at a few dozen items in flight).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from pydantic import ValidationError

from hark_operator.errors import ProcessorRefused, ProcessorUnavailable
from hark_serving.runs.itemspec import ItemError, ItemRequest, ItemResult

log = logging.getLogger(__name__)

ITEMS_PATH = "/v1/items"
CONFIG_STATUSES = {401, 403, 404}
REFUSING_STATUSES = {401, 403}  # the credential; a 404 is a missing route (app not deployed)
TokenSource = Callable[[], Awaitable[str | None]]


class SecretToken:
    """The bearer token from a Secret, cached until the app refuses it (then read again)."""

    def __init__(self, read: Callable[[str, str], Awaitable[dict[str, str]]], namespace: str,
                 ref: str) -> None:  # fmt: skip
        self.read, self.namespace = read, namespace
        self.name, _, key = ref.partition("/")
        self.key = key or "token"
        self._token: str | None = None
        self._fresh = False

    def invalidate(self) -> None:
        self._fresh = False

    async def __call__(self) -> str | None:
        if not self._fresh:
            try:
                data = await self.read(self.namespace, self.name)
                self._token = (data.get(self.key) or "").strip() or None
                self._fresh = True
            except Exception as exc:  # the Secret may come later: no token meanwhile
                log.warning("token Secret %s/%s not read: %s", self.namespace, self.name, exc)
        return self._token


class FileToken:
    """The bearer token from a mounted file (a Secret volume), read again once the app
    refuses it, so a rotated Secret is used without a restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._token: str | None = None
        self._fresh = False

    def invalidate(self) -> None:
        self._fresh = False

    async def __call__(self) -> str | None:
        if not self._fresh:
            try:
                self._token = self.path.read_text().strip() or None
                self._fresh = True
            except OSError as exc:  # mid-rotation: keep the last token
                log.warning("token file %s not read: %s", self.path, exc)
        return self._token


class ServeProcessor:
    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 3600.0,
        identity: str | None = None,
        token_source: SecretToken | FileToken | None = None,
    ) -> None:
        headers = {"User-Agent": "hark-operator"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.token_source = token_source
        if identity:
            headers["X-Hark-Operator"] = identity
        self.url = base_url.rstrip("/") + ITEMS_PATH
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=10.0)
        self.headers = headers
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    @property
    def session(self) -> aiohttp.ClientSession:
        """Made on first use, inside the running event loop; none after `aclose`."""
        if self._closed:
            # A handler still running while the operator stops would otherwise open a
            # new session that nothing closes: its sockets outlive the operator.
            raise ProcessorUnavailable(f"{self.url}: the operator is stopping")
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30.0),
                timeout=self.timeout,
            )
        return self._session

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()

    async def _headers(self) -> dict[str, str]:
        if self.token_source is None:
            return self.headers
        token = await self.token_source()
        return {**self.headers, "Authorization": f"Bearer {token}"} if token else self.headers

    async def deployed(self, timeout: float = 10.0) -> bool:
        """False when no app answers at the URL: the proxy says 404 (`GET /healthz` needs
        no model) or nothing accepts the connection. A slow answer is no verdict (True)."""
        url = self.url[: -len(ITEMS_PATH)] + "/healthz"
        try:
            async with self.session.get(
                url, headers=self.headers, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as response:
                return response.status != 404
        except TimeoutError:  # aiohttp's socket timeouts are connection errors too
            return True
        except aiohttp.ClientConnectionError:  # refused, reset: no proxy either
            return False

    async def ready(self) -> bool:
        """Whether the app has a Transcriber with the model loaded (`GET /readyz`)."""
        url = self.url[: -len(ITEMS_PATH)] + "/readyz"
        try:
            async with self.session.get(
                url, headers=self.headers, timeout=aiohttp.ClientTimeout(total=10.0)
            ) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError, ProcessorUnavailable):
            return False

    async def process(self, request: ItemRequest) -> ItemResult:
        try:
            async with self.session.post(
                self.url,
                data=request.model_dump_json(),
                headers={**await self._headers(), "Content-Type": "application/json"},
            ) as response:
                status, reason, body = response.status, response.reason or "", await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:  # connect, read, protocol, timeouts
            raise ProcessorUnavailable(
                f"{self.url}: {type(exc).__name__}: {exc or 'no answer'}"
            ) from exc
        result = _result(body)
        if result is not None:
            if status >= 500 and result.status == "failed" and not result.retryable:
                result = result.model_copy(update={"retryable": True})
            return result
        if status in REFUSING_STATUSES:
            if self.token_source is not None:
                self.token_source.invalidate()  # the next try reads the Secret again
            raise ProcessorRefused(f"{self.url} answered {status}: {_error_text(body, reason)}")
        if status == 429 or status >= 500 or status in CONFIG_STATUSES:
            raise ProcessorUnavailable(f"{self.url} answered {status}: {_error_text(body, reason)}")
        if status >= 400:
            code, message = _error_body(body, reason)
            return ItemResult(
                status="failed",
                input_uri=request.input_uri,
                output_uri=f"{request.output_uri}.json",
                error=ItemError(code=code, message=message),
                retryable=False,
            )
        raise ProcessorUnavailable(f"{self.url} answered {status} without a result")


def _result(body: bytes) -> ItemResult | None:
    try:
        return ItemResult.model_validate_json(body)
    except ValidationError:
        return None


def _error_body(body: bytes, reason: str) -> tuple[str, str]:
    try:
        error = json.loads(body).get("error") or {}
        return str(error.get("code") or "bad_request"), str(error.get("message") or "")
    except (ValueError, AttributeError):
        return "bad_request", _error_text(body, reason)


def _error_text(body: bytes, reason: str) -> str:
    return body[:300].decode("utf-8", "replace").strip() or reason
