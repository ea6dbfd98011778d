"""What every job runner of a process shares: the dispatcher, the stores, the clock, the
timing of status writes, scan retries and QA report rewrites, and the alert webhook."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from hark_operator.clients.storage import Stores
from hark_operator.clients.webhook import AlertWebhook
from hark_operator.jobs.claims import OutputClaims
from hark_operator.jobs.dispatcher import Dispatcher


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


@dataclass(frozen=True)
class JobEnv:
    """What every job of a process shares."""

    dispatcher: Dispatcher
    stores: Stores
    status_interval: float = 2.0
    retry_delay: float = 5.0  # first wait after a scan that could not run; doubles, jittered
    retry_cap: float = 300.0
    page_size: int = 1000
    wall: Callable[[], datetime] = utcnow
    claims: OutputClaims = field(default_factory=OutputClaims)
    report_interval: float = 60.0  # a QA report is rewritten at most this often
    webhook: AlertWebhook | None = None  # where alerts go; None: Events and metrics only
