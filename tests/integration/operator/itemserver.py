"""A small real HTTP server for `POST /v1/items`, running `hark_serving.runs.items.run_item`
with a local model: the operator's HTTP client talks to it as to the Serve app.

It behaves like a Serve Worker replica because it runs the same code: one
flight per output through the output's lease in S3 (a second request for an
output being worked on gets `in_progress`), bearer-token auth, the Serve app's
status codes. Run it in a thread
(`ItemServer`) or as a process (`python -m tests.integration.operator.itemserver`),
which a test can SIGKILL to lose a replica mid-item.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from hark_serving.runs.itemspec import ItemRequest, ItemResult
from hark_serving.storage.profiles import Credentials, ProfilesFile, StorageProfile, StorageProfiles

STATUS = {
    "storage_unavailable": 503,
    "not_found": 404,
    "access_denied": 403,
    "internal": 500,
    "in_progress": 409,
}


def profiles_for(endpoint: str, access_key: str, secret_key: str) -> StorageProfiles:
    profiles = StorageProfiles(
        ProfilesFile(
            profiles={
                "default": StorageProfile(
                    endpointUrl=endpoint, region="us-east-1", addressingStyle="path"
                )
            }
        )
    )
    profiles.store("default", credentials=Credentials(access_key, secret_key))
    return profiles


@dataclass
class ItemServer:
    model_dir: Path
    profiles: StorageProfiles
    token: str | None = None
    slow_seconds: float = 0.0  # added to every item, to have time to interfere
    die_on: str | None = None  # an input URI: exit the process in the middle of it
    requests: Counter[str] = field(default_factory=Counter)
    order: list[str] = field(default_factory=list)  # input URIs as requests arrived
    senders: list[tuple[str, str, float]] = field(default_factory=list)  # (input, operator, time)
    operators: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        from hark_operator.clients.inprocess import InProcessProcessor
        from hark_serving.config import Settings

        settings = Settings(model=str(self.model_dir), device="cpu", vad="silero", threads=1)
        self.processor = InProcessProcessor(settings, workers=4, profiles=self.profiles)
        self.processor.load()
        self.httpd: ThreadingHTTPServer | None = None

    def handle(self, req: ItemRequest) -> ItemResult:
        if self.slow_seconds:
            time.sleep(self.slow_seconds)
        if self.die_on is not None and req.input_uri == self.die_on:
            os._exit(17)  # a replica lost mid-item: no answer, no outputs
        return self.processor._process(req)

    def serve(self, port: int = 0) -> int:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/v1/items":
                    return self._send(
                        404, {"error": {"code": "route_not_found", "message": self.path}}
                    )
                if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
                    return self._send(401, {"error": {"code": "unauthorized", "message": "token"}})
                req = ItemRequest.model_validate_json(body)
                server.requests[req.input_uri] += 1
                server.order.append(req.input_uri)
                sender = self.headers.get("X-Hark-Operator", "")
                server.operators.add(sender)
                server.senders.append((req.input_uri, sender, time.monotonic()))
                result = server.handle(req)
                status = 200
                if result.status == "failed" and result.error is not None:
                    status = STATUS.get(result.error.code, 422)
                self._send(status, result.model_dump(mode="json"))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return int(self.httpd.server_address[1])

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--slow", type=float, default=0.0)
    p.add_argument("--die-on")
    a = p.parse_args()
    profiles = profiles_for(
        a.endpoint, os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    )
    server = ItemServer(a.model, profiles, slow_seconds=a.slow, die_on=a.die_on)
    server.serve(a.port)
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
