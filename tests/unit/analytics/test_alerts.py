"""Alerts: the match counter, and the webhook against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hark_serving.analytics.alerts import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    WEBHOOK_RETRY,
    Alert,
    WebhookSender,
    alert_of,
    count,
    match_counter,
    verify,
)
from hark_serving.analytics.categories import categorize
from hark_serving.analytics.rules import load_rules

from .calls import seg, transcript

SECRET = "s3cret-for-tests"
RULES = load_rules(
    [
        {"name": "long-silence", "alert": True, "all": [{"non_talk": {"min_seconds": 10}}]},
        {"name": "angry", "alert": True, "all": [{"emotion": {"in": ["ANGRY"]}}]},
        {"name": "quiet-note", "all": [{"non_talk": {"min_seconds": 1}}]},
    ]
)


def flagged(etag: str | None = "etag-1") -> Any:
    t = transcript([seg(0, 5), seg(20, 30, "customer", emotion="ANGRY")], 30, "s3://calls/a.wav")
    t.source.etag = etag
    return categorize(RULES, t)


class Receiver:
    """http.server on a free port; answers with the next status of `statuses` (then 200)."""

    def __init__(self, port: int, statuses: list[int]) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        statuses = list(statuses)
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                seen.append((dict(self.headers.items()), body))
                self.send_response(statuses.pop(0) if statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_alert_payload_names_the_file_alert_categories_points_and_transcript() -> None:
    alert = alert_of(flagged(), "s3://out/a.wav.json")
    assert alert is not None
    assert alert.payload() == {
        "type": "hark.alert/v1",
        "file": "s3://calls/a.wav",
        "transcript": "s3://out/a.wav.json",
        "idempotency_key": alert.key,
        "categories": [
            {"name": "long-silence", "points": [{"start": 5.0, "end": 20.0}]},
            {"name": "angry", "points": [{"start": 20.0, "end": 30.0}]},
        ],
    }
    assert alert_of(transcript([seg(0, 30)], 30), "x") is None


def test_idempotency_key_is_stable_per_file_content_and_categories() -> None:
    first, again = alert_of(flagged(), "a"), alert_of(flagged(), "b")
    other_content = alert_of(flagged(etag="etag-2"), "a")
    assert first is not None and again is not None and other_content is not None
    assert first.key == again.key
    assert first.key != other_content.key


def test_every_alert_match_counts_per_category() -> None:
    registry = CollectorRegistry()
    counter = match_counter(registry)
    alert = alert_of(flagged(), "x")
    assert alert is not None
    count(alert, counter)
    count(alert, counter)
    value = registry.get_sample_value
    assert value("hark_category_matches_total", {"category": "angry"}) == 2
    assert value("hark_category_matches_total", {"category": "long-silence"}) == 2
    assert value("hark_category_matches_total", {"category": "quiet-note"}) is None


def test_webhook_is_signed_and_the_signature_verifies() -> None:
    receiver = Receiver(free_port(), [])
    sender = WebhookSender(f"http://127.0.0.1:{receiver.server.server_port}/hook", SECRET)
    try:
        alert = alert_of(flagged(), "s3://out/a.wav.json")
        assert alert is not None
        delivery = sender.send(alert)
    finally:
        sender.close()
        receiver.stop()
    assert (delivery.delivered, delivery.attempts, delivery.status) == (True, 1, 200)
    ((headers, body),) = receiver.requests
    assert verify(SECRET, body, headers[SIGNATURE_HEADER])
    assert not verify("another-secret", body, headers[SIGNATURE_HEADER])
    assert headers[IDEMPOTENCY_HEADER] == alert.key
    assert body == alert.body()


def test_a_receiver_that_is_down_then_failing_then_up_gets_retries_with_one_key() -> None:
    port = free_port()
    receivers: list[Receiver] = []
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        # The receiver comes up during the first backoff wait, answering 503 once.
        waits.append(seconds)
        if not receivers:
            receivers.append(Receiver(port, [503]))
        time.sleep(seconds)

    sender = WebhookSender(f"http://127.0.0.1:{port}/hook", SECRET, sleep=sleep)
    alert = alert_of(flagged(), "s3://out/a.wav.json")
    assert alert is not None
    try:
        delivery = sender.send(alert)
    finally:
        sender.close()
        for r in receivers:
            r.stop()
    assert (delivery.delivered, delivery.attempts, delivery.status) == (True, 3, 200)
    seen = receivers[0].requests
    assert len(seen) == 2  # the 503 and the 200; the refused connection reached nobody
    assert {h[IDEMPOTENCY_HEADER] for h, _ in seen} == {alert.key}
    assert all(verify(SECRET, body, h[SIGNATURE_HEADER]) for h, body in seen)
    # Exponential backoff with jitter under the default policy: 0.5 s, then 1 s, each minus up to 20%.
    assert len(waits) == 2
    assert 0.4 <= waits[0] <= 0.5 and 0.8 <= waits[1] <= 1.0
    assert WEBHOOK_RETRY.delay(20, rand=0) == WEBHOOK_RETRY.cap == 60.0
    assert not delivery.refused


def test_a_receiver_that_refuses_the_payload_is_not_retried() -> None:
    receiver = Receiver(free_port(), [400])
    sender = WebhookSender(f"http://127.0.0.1:{receiver.server.server_port}/", SECRET)
    alert = alert_of(flagged(), "x")
    assert alert is not None
    try:
        delivery = sender.send(alert)
    finally:
        sender.close()
        receiver.stop()
    assert (delivery.delivered, delivery.attempts, delivery.status) == (False, 1, 400)
    assert delivery.refused
    assert len(receiver.requests) == 1


def test_an_alert_read_back_from_its_payload_has_the_same_body_and_key() -> None:
    alert = alert_of(flagged(), "s3://out/a.wav.json")
    assert alert is not None
    again = Alert.from_payload(json.loads(alert.body()))
    assert again == alert and again.body() == alert.body()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "not a hark.alert/v1"),
        ({"type": "hark.other/v1"}, "not a hark.alert/v1"),
        ({"type": "hark.alert/v1", "file": "x"}, "malformed .*KeyError: 'categories'"),
        (
            {"type": "hark.alert/v1", "file": "f", "transcript": "t", "idempotency_key": "k",
             "categories": [{"name": "a", "points": [{"start": "soon"}]}]},
            "malformed .*float",
        ),
        (
            {"type": "hark.alert/v1", "file": "f", "transcript": "t", "idempotency_key": "k",
             "categories": []},
            "names no category",
        ),
    ],
)  # fmt: skip
def test_an_unreadable_alert_record_is_refused_with_the_reason(doc: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Alert.from_payload(doc)


@pytest.mark.parametrize(
    ("url", "secret", "message"),
    [("ftp://x", SECRET, "must start with http"), ("http://x", "", "needs a secret")],
)
def test_bad_webhook_settings_are_refused(url: str, secret: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WebhookSender(url, secret)


def test_a_webhook_policy_without_a_bound_on_tries_is_refused() -> None:
    from hark_serving.retry import RetryPolicy

    with pytest.raises(ValueError, match="bound on its tries"):
        WebhookSender("http://x", SECRET, policy=RetryPolicy(attempts=None))
