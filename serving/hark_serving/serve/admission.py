"""Admission control of one Ingress replica: bytes in flight and requests waiting.

Every upload reserves its declared size (`Content-Length`, or the upload
limit when it sends none) for as long as its request runs: while it arrives,
while it waits for a Worker and while it is decoded from the spooled file.
A request that would pass either bound is refused at once with `overloaded`
(503 and `Retry-After`), so memory and disk stay within what the platform
sized, and the client knows to come back.

Plain asyncio, no Ray: one replica serves its requests on one event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from hark_serving.serve.errors import Overloaded


@dataclass
class Admission:
    max_bytes: int
    max_requests: int
    bytes_in_flight: int = 0
    requests: int = 0

    def check(self, size: int) -> None:
        """Raise `Overloaded` unless a request of `size` bytes fits now."""
        if self.requests >= self.max_requests:
            raise Overloaded(
                f"{self.requests} requests are in progress on this replica (the limit); "
                "retry after the Retry-After delay"
            )
        if self.bytes_in_flight and self.bytes_in_flight + size > self.max_bytes:
            raise Overloaded(
                f"{self.bytes_in_flight} bytes of uploads are in progress on this replica; "
                f"{size} more would pass the {self.max_bytes} byte limit; retry after the "
                "Retry-After delay"
            )

    @contextmanager
    def admit(self, size: int) -> Iterator[None]:
        """Hold `size` bytes and one request slot until the block ends (or raise)."""
        self.check(size)
        self.bytes_in_flight += size
        self.requests += 1
        try:
            yield
        finally:
            self.bytes_in_flight -= size
            self.requests -= 1
