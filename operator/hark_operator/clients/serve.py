"""`POST /v1/items` on the Serve application: one S3 object per call.

The body is `hark_serving.runs.itemspec.ItemRequest`, the answer an `ItemResult`,
also when the item failed (then with the HTTP status of its error code).
What the answer means for a retry:

- an `ItemResult` body: it says (`retryable` marks failures that may pass;
  a 5xx result is always worth another try);
- connection errors, timeouts, and 429 or 5xx without a result (a replica
  died, the app is starting or overloaded): `ProcessorUnavailable`, retried;
- 401, 403, 404 without a result: the operator's configuration is wrong
  (token, URL), which the platform team can fix while items wait:
  `ProcessorRefused` (a `ProcessorUnavailable`); dispatch pauses until it is fixed;
- other 4xx without a result: the request itself is wrong: a failed result,
  not retried.
"""

from __future__ import annotations

import logging

import httpx
from pydantic import ValidationError

from hark_operator.errors import ProcessorRefused, ProcessorUnavailable
from hark_serving.runs.itemspec import ItemError, ItemRequest, ItemResult

log = logging.getLogger(__name__)

ITEMS_PATH = "/v1/items"
CONFIG_STATUSES = {401, 403, 404}


class ServeProcessor:
    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 3600.0,
        identity: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        headers = {"User-Agent": "hark-operator"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if identity:
            headers["X-Hark-Operator"] = identity
        self.url = base_url.rstrip("/") + ITEMS_PATH
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
        self.headers = headers

    async def aclose(self) -> None:
        await self.client.aclose()

    async def ready(self) -> bool:
        """Whether the app has a Transcriber with the model loaded (`GET /readyz`)."""
        url = self.url[: -len(ITEMS_PATH)] + "/readyz"
        try:
            response = await self.client.get(url, headers=self.headers, timeout=10.0)
        except httpx.TransportError:
            return False
        return response.status_code == 200

    async def process(self, request: ItemRequest) -> ItemResult:
        try:
            response = await self.client.post(
                self.url, json=request.model_dump(mode="json"), headers=self.headers
            )
        except httpx.TransportError as exc:  # connect, read, protocol errors and timeouts
            raise ProcessorUnavailable(
                f"{self.url}: {type(exc).__name__}: {exc or 'no answer'}"
            ) from exc
        status = response.status_code
        result = _result(response)
        if result is not None:
            if status >= 500 and result.status == "failed" and not result.retryable:
                result = result.model_copy(update={"retryable": True})
            return result
        if status in CONFIG_STATUSES:
            raise ProcessorRefused(f"{self.url} answered {status}: {_error_text(response)}")
        if status == 429 or status >= 500:
            raise ProcessorUnavailable(f"{self.url} answered {status}: {_error_text(response)}")
        if status >= 400:
            code, message = _error_body(response)
            return ItemResult(
                status="failed",
                input_uri=request.input_uri,
                output_uri=f"{request.output_uri}.json",
                error=ItemError(code=code, message=message),
                retryable=False,
            )
        raise ProcessorUnavailable(f"{self.url} answered {status} without a result")


def _result(response: httpx.Response) -> ItemResult | None:
    try:
        return ItemResult.model_validate_json(response.content)
    except ValidationError:
        return None


def _error_body(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error") or {}
        return str(error.get("code") or "bad_request"), str(error.get("message") or "")
    except (ValueError, AttributeError):
        return "bad_request", _error_text(response)


def _error_text(response: httpx.Response) -> str:
    return response.text[:300].strip() or response.reason_phrase
