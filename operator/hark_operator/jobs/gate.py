"""Whether the processor can take work: one circuit breaker for every job.

    Available ─(a try finds the processor unreachable or refusing)─► Paused
        ▲                                                            │ backoff (jitter, cap)
        └──────────(the probe got a result)──── Probing ◄────────────┘
                                                   │ probe failed: Paused, longer backoff

While paused, no job dispatches: the items stay queued with their attempts
unspent, instead of each burning its `maxAttempts` against a processor that is
down for everyone. When the backoff has passed, exactly one item goes out as
the probe; any result from the processor (even a failure the input caused)
reopens the gate. The state is plain data, read by the jobs' status (a
condition), the Events and the `hark_operator_processor_available` gauge.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from hark_serving.retry import RetryPolicy

REFUSED = "processor_refused"
# A probe is one request for the whole operator, so it may come often: a Serve app
# back after a 90 s restart is found within half a minute, not after the five
# minutes an item's backoff may reach by then.
PROBE_CAP_SECONDS = 30.0


def probe_policy(items: RetryPolicy) -> RetryPolicy:
    """The gate's probe schedule: the items' backoff, capped at `PROBE_CAP_SECONDS`."""
    return replace(items, cap=min(items.cap, PROBE_CAP_SECONDS), attempts=None)


@dataclass(frozen=True)
class GateState:
    available: bool
    reason: str = ""  # condition reason: ProcessorUnreachable or ProcessorRefused
    message: str = ""
    failures: int = 0  # failed probes in a row (and the try that closed the gate)


AVAILABLE = GateState(True)


def reason_for(code: str) -> str:
    return "ProcessorRefused" if code in (REFUSED, "unauthorized") else "ProcessorUnreachable"


class Gate:
    def __init__(
        self,
        policy: RetryPolicy,
        *,
        clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.rng = rng or random.Random()
        self.state = AVAILABLE
        self.retry_at = 0.0
        self.probing = False
        self.changes = 0  # bumped on every flip, so observers notice even a quick one

    @property
    def available(self) -> bool:
        return self.state.available

    def may_send(self) -> bool:
        """Whether an item may start now (while paused: only the probe, once due)."""
        if self.state.available:
            return True
        return not self.probing and self.clock() >= self.retry_at

    def sent(self) -> bool:
        """An item was started; True when it is the probe."""
        if self.state.available:
            return False
        self.probing = True
        return True

    def seconds_to_probe(self) -> float | None:
        if self.state.available or self.probing:
            return None
        return max(0.0, self.retry_at - self.clock())

    def failed(self, code: str, message: str, *, probe: bool) -> None:
        """A try found the processor unavailable."""
        if self.state.available:
            self.state = GateState(False, reason_for(code), message, 1)
            self.changes += 1
        elif probe:
            self.state = GateState(False, reason_for(code), message, self.state.failures + 1)
        else:
            return  # a try started before the gate closed; the schedule stands
        self.probing = False
        self.retry_at = self.clock() + self.policy.delay(self.state.failures, self.rng.random())

    def answered(self, *, probe: bool) -> None:
        """The processor answered a try with a result."""
        if probe:
            self.probing = False
        if not self.state.available:
            self.state = AVAILABLE
            self.changes += 1


class GateNews:
    """What one job should announce about the gate since it last looked: (type, reason,
    message) of an Event, or None. A pause is announced to jobs that are running; the
    resumption to those that heard of the pause."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.seen = gate.changes
        self.said_paused = False

    def news(self, *, active: bool) -> tuple[str, str, str] | None:
        if self.gate.changes == self.seen:
            return None
        self.seen = self.gate.changes
        state = self.gate.state
        if state.available:
            if not self.said_paused:
                return None
            self.said_paused = False
            return ("Normal", "ProcessorAvailable", "dispatching resumed")
        if not active:
            return None
        self.said_paused = True
        return (
            "Warning",
            state.reason,
            f"dispatching paused for every job, files stay pending: {state.message}",
        )
