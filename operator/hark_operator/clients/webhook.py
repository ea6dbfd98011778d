"""The alert webhook, for the operator's event loop: the data plane's signed `WebhookSender`
(its tries and backoff) on a small thread pool of its own, so a receiver that is down
never holds up a storage call, and stopped at once when the operator stops."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from hark_serving.analytics.alerts import Alert, Delivery, WebhookSender


class WebhookClosed(Exception):
    """The operator is stopping: a delivery waiting between tries gives up."""


class AlertWebhook:
    def __init__(self, url: str, secret: str, *, threads: int = 2, timeout: float = 10.0) -> None:
        self._stop = threading.Event()
        self.sender = WebhookSender(url, secret, timeout=timeout, sleep=self._sleep)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hark-webhook")

    @property
    def url(self) -> str:
        return self.sender.url

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise WebhookClosed("the operator is stopping")

    async def send(self, alert: Alert) -> Delivery:
        """Deliver `alert` (tries, backoff, signature: `WebhookSender.send`)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(self.sender.send, alert))

    async def aclose(self) -> None:
        """Stop: a delivery waiting between tries ends at once, one in flight within the
        timeout; then the HTTP client closes."""
        self._stop.set()
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
        self.sender.close()
