"""Alerts for categories marked `alert: true`: a counter and a signed webhook, at least once.

One delivery per transcript that matched alert categories. The body is JSON;
`X-Hark-Signature-256: sha256=<hex>` is the HMAC-SHA256 of the exact body bytes
under the shared secret, and `Idempotency-Key` is stable for one file's content and
set of categories, so a receiver can drop the repeats that at-least-once delivery
brings. A delivery is retried on connection errors, 408, 425, 429 and 5xx answers,
with the project's one backoff (`hark_serving.retry.RetryPolicy`: exponential, jitter,
a cap); any other answer ends it.

An alert's JSON body (`Alert.payload`) is also what the outbox of a TranscriptionJob
holds until the operator has delivered it: `<outbox>/<idempotency key>.json`
(`record_name`), read back with `Alert.from_payload`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from hark_serving.retry import RetryPolicy
from hark_serving.transcript.schema import Transcript

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hark-Signature-256"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "X-Hark-Event"
ALERT_SCHEMA = "hark.alert/v1"
RETRY_STATUS = frozenset({408, 425, 429})
# 8 tries, 0.5 s doubling, capped at 60 s, each wait minus up to 20% (docs/analytics.md).
WEBHOOK_RETRY = RetryPolicy(base=0.5, factor=2.0, cap=60.0, attempts=8, jitter=0.2)
_COUNTERS: dict[int, Counter] = {}


def match_counter(registry: CollectorRegistry = REGISTRY) -> Counter:
    """`hark_category_matches_total{category}` in `registry` (made once per registry)."""
    key = id(registry)
    if key not in _COUNTERS:
        _COUNTERS[key] = Counter(
            "hark_category_matches",
            "Transcripts that matched an alert category, by category.",
            ["category"],
            registry=registry,
        )
    return _COUNTERS[key]


@dataclass(frozen=True)
class Alert:
    uri: str
    transcript: str
    key: str
    categories: dict[str, list[dict[str, float]]]

    def payload(self) -> dict[str, Any]:
        return {
            "type": ALERT_SCHEMA,
            "file": self.uri,
            "transcript": self.transcript,
            "idempotency_key": self.key,
            "categories": [
                {"name": name, "points": points} for name, points in self.categories.items()
            ],
        }

    def body(self) -> bytes:
        return json.dumps(self.payload(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_payload(cls, doc: object) -> Alert:
        """The alert of a `payload()` read back; ValueError naming what is wrong."""
        if not isinstance(doc, dict) or doc.get("type") != ALERT_SCHEMA:
            raise ValueError(f"not a {ALERT_SCHEMA} document")
        try:
            categories = {
                str(c["name"]): [
                    {"start": float(p["start"]), "end": float(p["end"])} for p in c["points"]
                ]
                for c in doc["categories"]
            }
            alert = cls(
                uri=str(doc["file"]),
                transcript=str(doc["transcript"]),
                key=str(doc["idempotency_key"]),
                categories=categories,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"malformed {ALERT_SCHEMA} document ({type(exc).__name__}: {exc})"
            ) from None
        if not categories:
            raise ValueError(f"{ALERT_SCHEMA} document names no category")
        return alert


def record_name(key: str) -> str:
    """The outbox object of the alert with idempotency key `key`."""
    return f"{key}.json"


def idempotency_key(uri: str, content: str, categories: list[str]) -> str:
    """Stable for one file URI, one content (ETag or text) and one set of categories."""
    text = "\n".join([uri, content, *sorted(categories)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def alert_of(transcript: Transcript, link: str) -> Alert | None:
    """The alert `transcript` raises, or None when it matched no alert category."""
    call = transcript.call
    if call is None:
        return None
    found = {
        name: [p.model_dump() for p in match.points]
        for name, match in call.categories.details.items()
        if match.alert
    }
    if not found:
        return None
    content = transcript.source.etag or hashlib.sha256(transcript.text.encode()).hexdigest()
    return Alert(
        uri=transcript.source.uri,
        transcript=link,
        key=idempotency_key(transcript.source.uri, content, list(found)),
        categories=found,
    )


def count(alert: Alert, counter: Counter | None = None) -> None:
    counter = counter or match_counter()
    for name in alert.categories:
        counter.labels(category=name).inc()


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, body), signature)


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    attempts: int
    status: int | None
    error: str | None = None

    @property
    def refused(self) -> bool:
        """The receiver answered, with a status that trying again would not change."""
        return not self.delivered and self.status is not None and not retryable(self.status)


def retryable(status: int) -> bool:
    return status >= 500 or status in RETRY_STATUS


class WebhookSender:
    """Posts alerts to one URL, signed with one secret."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        policy: RetryPolicy = WEBHOOK_RETRY,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL {url!r} must start with http:// or https://")
        if not secret:
            raise ValueError("a webhook needs a secret to sign with (HARK_WEBHOOK_SECRET)")
        if policy.attempts is None:
            raise ValueError("a webhook's retry policy needs a bound on its tries")
        self.attempts = policy.attempts
        self.url = url
        self.secret = secret
        self.policy = policy
        self.sleep = sleep
        import httpx  # 0.1 s, paid only by a run that has a webhook

        self.client = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.client.close()

    def send(self, alert: Alert) -> Delivery:
        import httpx  # imported by __init__ already

        body = alert.body()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.secret, body),
            IDEMPOTENCY_HEADER: alert.key,
            EVENT_HEADER: "category-alert",
        }
        status: int | None = None
        error: str | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                response = self.client.post(self.url, content=body, headers=headers)
                status, error = response.status_code, None
                if status < 300:
                    return Delivery(True, attempt, status)
                if not retryable(status):
                    return Delivery(False, attempt, status, f"the receiver answered {status}")
                error = f"the receiver answered {status}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            if self.policy.allows(attempt):
                delay = self.policy.delay(attempt)
                log.info(
                    "webhook %s: try %d failed (%s); again in %.1fs",
                    self.url,
                    attempt,
                    error,
                    delay,
                )
                self.sleep(delay)
        return Delivery(False, self.attempts, status, error)
