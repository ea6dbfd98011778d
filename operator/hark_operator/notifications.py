"""Bucket notifications: a new object goes to the Watch jobs whose drop folder holds it.

Where the object store can send events (a MinIO webhook target; on AWS, S3 → SQS
relayed to the same endpoint), it POSTs them to this receiver, which finds the
Watch jobs whose input bucket and prefix contain the new key and hands each its
keys: the job checks and queues them at once (`JobRunner.notify`), without
listing the prefix and without waiting for `pollIntervalSeconds`. Polling stays
as the reconciliation that catches anything a lost notification missed;
without notifications nothing changes.

    POST /notifications/s3      body: an S3 event record set ({"Records": [...]},
                                as MinIO and S3 send it); `Authorization: Bearer
                                <HARK_NOTIFY_TOKEN>` when a token is set

Matching is plain data (`created_objects`, `keys_by_job`); the aiohttp server
is the thin edge.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web

log = logging.getLogger(__name__)

PATH = "/notifications/s3"
MAX_BODY = 4 * 2**20


@dataclass(frozen=True)
class NewObject:
    bucket: str
    key: str


@dataclass(frozen=True)
class DropFolder:
    """What a Watch job watches: objects under `prefix` in `bucket`."""

    bucket: str
    prefix: str


def created_objects(body: Mapping[str, Any]) -> list[NewObject]:
    """The objects an S3 event record set says were created (other events are ignored).

    Keys arrive URL-encoded (`+` for a space), as S3 and MinIO send them.
    """
    found = []
    for record in body.get("Records") or []:
        if not isinstance(record, Mapping):
            continue
        name = str(record.get("eventName") or "")
        if "ObjectCreated" not in name:
            continue
        s3 = record.get("s3") or {}
        bucket = (s3.get("bucket") or {}).get("name")
        key = (s3.get("object") or {}).get("key")
        if isinstance(bucket, str) and isinstance(key, str) and bucket and key:
            found.append(NewObject(bucket, unquote_plus(key)))
    return found


def keys_by_job(
    objects: Iterable[NewObject], folders: Mapping[str, DropFolder]
) -> dict[str, list[str]]:
    """Job key → the keys of `objects` in its drop folder, in the order they came."""
    found: dict[str, list[str]] = {}
    for obj in objects:
        for job, folder in folders.items():
            if obj.bucket == folder.bucket and obj.key.startswith(folder.prefix):
                found.setdefault(job, []).append(obj.key)
    return found


class NotificationReceiver:
    """The HTTP edge: authenticate, parse, hand keys to jobs; answers 204 whatever it matched."""

    def __init__(
        self,
        folders: Callable[[], Mapping[str, DropFolder]],
        notify: Callable[[str, list[str]], None],
        *,
        token: str | None = None,
    ) -> None:
        self.folders = folders
        self.notify = notify
        self.token = token
        self.received = 0
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def _authorised(self, request: web.Request) -> bool:
        if not self.token:
            return True
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode())

    async def handle(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response(
                {"error": {"code": "unauthorized", "message": "wrong or missing bearer token"}},
                status=401,
            )
        try:
            body = await request.json()
        except ValueError:
            return web.json_response(
                {"error": {"code": "bad_request", "message": "the body is not JSON"}}, status=400
            )
        if not isinstance(body, dict):
            return web.json_response(
                {"error": {"code": "bad_request", "message": "expected an S3 event object"}},
                status=400,
            )
        objects = created_objects(body)
        self.received += len(objects)
        for job, keys in sorted(keys_by_job(objects, self.folders()).items()):
            log.info("%d new object(s) in the drop folder of %s, %s first", len(keys), job, keys[0])
            self.notify(job, keys)
        return web.Response(status=204)

    async def alive(self, request: web.Request) -> web.Response:
        # MinIO checks that a webhook target answers before it sends events to it.
        return web.Response(status=200)

    async def start(self, port: int, host: str = "0.0.0.0") -> int:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(PATH, self.handle)
        app.router.add_get(PATH, self.alive)  # HEAD too
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        log.info("bucket notifications on :%d%s", self.port, PATH)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
