"""Applying the policy: read the backlog, decide, write the floor, tell about it.

Every `interval` seconds the loop asks the policy for a floor and writes it
through the backend when it changed (or when the backend shows another value,
for instance after a manual edit). The first step reads the floor in place,
so a restarted operator continues from it instead of from the minimum. Each
change is logged, counted (`hark_operator_scale_events`) and announced, which
posts an Event on the RayService or on the jobs. Only an operator that may
act (the peering leader) scales; a paused one forgets its state and reads the
floor afresh when it takes over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from hark_operator import metrics
from hark_operator.scaling.backends import Scaler
from hark_operator.scaling.policy import Decision, ScaleState, ScalingPolicy, decide

log = logging.getLogger(__name__)

Announce = Callable[[Decision, float], Awaitable[None]]


class ScaleLoop:
    def __init__(
        self,
        policy: ScalingPolicy,
        scaler: Scaler,
        backlog: Callable[[], float],
        *,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        announce: Announce | None = None,
        active: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.policy = policy
        self.scaler = scaler
        self.backlog = backlog
        self.interval = interval
        self.clock = clock
        self.announce = announce
        self.active = active
        self.state: ScaleState | None = None
        self.last: Decision | None = None

    async def step(self) -> Decision | None:
        if self.active is not None and not await self.active():
            self.state = None
            return None
        metrics.REPLICAS_MIN.set(self.policy.min_replicas)
        metrics.REPLICAS_MAX.set(self.policy.max_replicas)
        in_place = await self.scaler.current()
        if in_place is not None:
            metrics.REPLICAS_CURRENT.set(in_place)
        now = self.clock()
        if self.state is None:
            start = in_place if in_place is not None else self.policy.min_replicas
            self.state = ScaleState.initial(self.policy, start, now)
        backlog = self.backlog()
        decision = decide(self.policy, backlog, self.state, now)
        metrics.REPLICAS_DESIRED.set(decision.floor)
        before = in_place if in_place is not None else decision.previous
        if decision.floor != before:
            written = await self.scaler.apply(decision.floor)
            metrics.REPLICAS_CURRENT.set(written)
            # What was in place before and what the backend wrote (its own bounds may win).
            state = ScaleState(written, decision.state.last_needed)
            decision = Decision(written, decision.need, decision.reason, state, before)
            if written != before:
                metrics.SCALE_EVENTS.labels("up" if written > before else "down").inc()
                log.info(
                    "GPU floor %d → %d (%s): backlog %.0f items, %g per replica, bounds %d..%d",
                    before,
                    written,
                    self.scaler.name,
                    backlog,
                    self.policy.items_per_replica,
                    self.policy.min_replicas,
                    self.policy.max_replicas,
                )
                if self.announce is not None:
                    await self.announce(decision, backlog)
        self.state = decision.state
        self.last = decision
        return decision

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the floor stays where it is; try again next round
                log.warning("scaling step failed: %s", exc)
            await asyncio.sleep(self.interval)
