"""The GPU replica floor as a pure function of the backlog and the clock.

    need  = clamp(ceil(backlog / items_per_replica), min, max)
    floor = need                      when need > floor   (up at once)
          = floor - 1                 when floor has not been needed for
                                      scale_down_delay_seconds (one step)
          = floor                     otherwise

"Needed" is tracked per level: the state remembers, for each k, the last time
the backlog needed at least k replicas. A pool that drains slowly therefore
shrinks a step at a time as each level falls out of use; one that empties at
once waits out the delay and then steps down one replica per evaluation. The
operator, the embedded runner and the benchmark simulator all call `decide`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

NEVER = float("-inf")

Reason = Literal["up", "down", "hold", "steady"]


@dataclass(frozen=True)
class ScalingPolicy:
    items_per_replica: float = 8.0
    min_replicas: int = 0
    max_replicas: int = 4
    scale_down_delay_seconds: float = 300.0

    def __post_init__(self) -> None:
        if self.items_per_replica <= 0:
            raise ValueError("items_per_replica must be positive")
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError("need 0 <= min_replicas <= max_replicas")
        if self.scale_down_delay_seconds < 0:
            raise ValueError("scale_down_delay_seconds must not be negative")

    def clamp(self, replicas: int) -> int:
        return max(self.min_replicas, min(self.max_replicas, replicas))

    def need(self, backlog: float) -> int:
        """Replicas the backlog asks for, within the bounds."""
        return self.clamp(math.ceil(max(0.0, backlog) / self.items_per_replica))


@dataclass(frozen=True)
class ScaleState:
    floor: int
    # last_needed[k - 1]: the last time the backlog needed at least k replicas.
    last_needed: tuple[float, ...] = ()

    @classmethod
    def initial(cls, policy: ScalingPolicy, floor: int, now: float) -> ScaleState:
        """Start from the floor found in place; it counts as needed now, so a restart
        never drops replicas before a full delay has passed."""
        floor = policy.clamp(floor)
        return cls(floor, (now,) * floor + (NEVER,) * (policy.max_replicas - floor))


@dataclass(frozen=True)
class Decision:
    floor: int
    need: int
    reason: Reason
    state: ScaleState
    previous: int

    @property
    def changed(self) -> bool:
        return self.floor != self.previous


def decide(policy: ScalingPolicy, backlog: float, state: ScaleState, now: float) -> Decision:
    """The next floor for `backlog` items waiting or in flight at time `now`."""
    need = policy.need(backlog)
    last = list(state.last_needed[: policy.max_replicas])
    last += [NEVER] * (policy.max_replicas - len(last))
    for k in range(need):
        last[k] = now
    floor = policy.clamp(state.floor)
    reason: Reason
    if need > floor:
        floor, reason = need, "up"
    elif need == floor:
        reason = "steady"
    elif now - last[floor - 1] >= policy.scale_down_delay_seconds:
        floor, reason = floor - 1, "down"
    else:
        reason = "hold"
    return Decision(floor, need, reason, ScaleState(floor, tuple(last)), state.floor)
