"""S3 response times: listings' ISO 8601 read directly, every form as botocore reads it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.utils import parse_timestamp

from hark_serving.storage.s3 import S3Settings, S3Store, parse_time
from hark_serving.storage.uris import S3Uri

LISTING = b"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<Name>calls</Name><Prefix>in/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>
<IsTruncated>false</IsTruncated>
<Contents><Key>in/a.wav</Key><LastModified>2026-12-01T10:00:00.123Z</LastModified>
<ETag>&quot;e1&quot;</ETag><Size>3</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>in/b.wav</Key><LastModified>2026-12-01T10:00:01.000Z</LastModified>
<ETag>&quot;e2&quot;</ETag><Size>4</Size><StorageClass>STANDARD</StorageClass></Contents>
</ListBucketResult>"""


@pytest.mark.parametrize(
    "value",
    [
        "2026-12-01T10:00:00.123Z",  # MinIO's and S3's listings
        "2026-12-01T10:00:00Z",
        "2026-12-01T12:00:00.5+02:00",
        "Tue, 01 Dec 2026 10:00:00 GMT",  # Last-Modified headers
        "2026-12-01T10:00:00",  # no offset: botocore's reading
        1764583200,
    ],
)
def test_times_read_as_botocore_reads_them(value: Any) -> None:
    assert parse_time(value) == parse_timestamp(value)
    assert (parse_time(value).tzinfo is None) == (parse_timestamp(value).tzinfo is None)


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    """A local HTTP server answering every request with the listing above."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(LISTING)))
            self.end_headers()
            self.wfile.write(LISTING)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_listing_through_the_store_carries_exact_aware_times(s3_endpoint: str) -> None:
    store = S3Store(
        S3Settings(endpoint_url=s3_endpoint, region="us-east-1", access_key_id="k",
                   secret_access_key="s", addressing_style="path", max_attempts=1)
    )  # fmt: skip
    listed = list(store.iter_objects(S3Uri("calls", "in/")))
    assert [(o.key, o.size, o.etag) for o in listed] == [
        ("in/a.wav", 3, '"e1"'),
        ("in/b.wav", 4, '"e2"'),
    ]
    assert [o.last_modified for o in listed] == [
        datetime(2026, 12, 1, 10, 0, 0, 123000, tzinfo=timezone.utc),
        datetime(2026, 12, 1, 10, 0, 1, tzinfo=timezone.utc),
    ]
