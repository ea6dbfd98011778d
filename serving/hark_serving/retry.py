"""One retry policy for every place that waits and tries again.

Exponential backoff with "full jitter" and a cap, as boto3's standard retry
mode and Ray's own backoff do: the delay before try `n + 1` is drawn
uniformly from `[floor, min(cap, base * factor ** (n - 1))]`. Jitter spreads
the retries of many callers that failed at the same moment (a restarted
Serve app, an object store coming back), so they do not return as one wave.

`RetryPolicy.delay` is pure (the random draw is an argument) so callers that
keep their own queue (the operator's dispatcher) schedule with it, and
`retry_async` runs the usual loop for code that simply calls again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["RetryPolicy", "retry_async"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait between tries, and how many tries at most (`None`: no bound)."""

    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    attempts: int | None = 3
    # Fraction of the exponential delay that is random: 1.0 is full jitter, 0.0 none.
    jitter: float = 1.0

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0 or self.factor < 1:
            raise ValueError(f"invalid retry policy {self!r}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must lie in [0, 1], not {self.jitter}")

    def ceiling(self, attempt: int) -> float:
        """The largest delay after failed try `attempt` (1-based)."""
        exponent = max(0, attempt - 1)
        # Past ~1000 doublings the float overflows; the cap has long been reached.
        if exponent > 1000:
            return self.cap
        return float(min(self.cap, self.base * self.factor**exponent))

    def delay(self, attempt: int, rand: float | None = None) -> float:
        """Seconds to wait after failed try `attempt`; `rand` in [0, 1) (drawn if None)."""
        ceiling = self.ceiling(attempt)
        r = random.random() if rand is None else rand
        return ceiling * (1.0 - self.jitter * r)

    def allows(self, attempt: int) -> bool:
        """Whether another try may follow failed try `attempt`."""
        return self.attempts is None or attempt < self.attempts


async def retry_async(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    retry_on: tuple[type[BaseException], ...],
    describe: str = "call",
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """`await call()` until it returns, or raises something not in `retry_on`, or
    `policy.attempts` tries have failed (then the last exception propagates)."""
    attempt = 1
    while True:
        try:
            return await call()
        except retry_on as exc:
            if not policy.allows(attempt):
                raise
            wait = policy.delay(attempt)
            log.warning("%s failed (%s); try %d again in %.1fs", describe, exc, attempt + 1, wait)
            await sleep(wait)
            attempt += 1
