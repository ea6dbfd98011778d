"""Autoscaling policies for the GPU pool simulator, one interface:

    every `interval` seconds: desired(now, backlog, ongoing, current, running) -> replicas

`backlog` is every item waiting or in service (what the Hark operator knows
from S3 and its dispatcher); `ongoing` is what a request-based autoscaler
can see at the deployment: requests sent and not answered, which the
operator's in-flight bound caps. `current` counts replicas asked for,
`running` those that are up.

- Hark: the operator's own policy function, `hark_operator.scaling.policy.decide`.
- Fixed: a constant pool.
- KEDA: a queue-length trigger polled every 30 s feeding an HPA (sync 15 s,
  default scale-up policy max(+4 pods, +100%) per 15 s, 300 s down-scale
  stabilisation window), activation from zero, cooldownPeriod 300 s to zero.
- Ray Serve: request-based autoscaling with its defaults: target 2 ongoing
  requests per replica, averaged over 30 s, upscale after 30 s and downscale
  after 600 s of agreeing decisions, to zero like any downscale; from zero
  one replica at once (its cold-start path), and no further decision until a
  replica runs (its policy divides by running replicas).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from hark_operator.scaling.policy import ScaleState, ScalingPolicy, decide


class Policy:
    name = "policy"
    interval = 10.0
    at_rest = 0  # replicas the policy keeps with nothing to do

    def desired(self, now: float, backlog: int, ongoing: int, current: int, running: int) -> int:
        raise NotImplementedError


@dataclass
class Hark(Policy):
    policy: ScalingPolicy
    interval: float = 10.0
    name: str = "hark"
    state: ScaleState | None = None

    def desired(self, now: float, backlog: int, ongoing: int, current: int, running: int) -> int:
        if self.state is None:
            self.state = ScaleState.initial(self.policy, current, now)
        d = decide(self.policy, backlog, self.state, now)
        self.state = d.state
        return d.floor


@dataclass
class Fixed(Policy):
    replicas: int
    name: str = "fixed"
    interval: float = 3600.0

    @property
    def at_rest(self) -> int:  # type: ignore[override]
        return self.replicas

    def desired(self, now: float, backlog: int, ongoing: int, current: int, running: int) -> int:
        return self.replicas


@dataclass
class Keda(Policy):
    target: float  # queue items per replica (the trigger's value)
    max_replicas: int
    polling: float = 30.0
    cooldown: float = 300.0
    window: float = 300.0
    interval: float = 15.0  # HPA sync period
    name: str = "keda"
    _metric: int = 0
    _polled_at: float = -1e18
    _active_at: float = -1e18
    _recommendations: deque[tuple[float, int]] = field(default_factory=deque)

    def desired(self, now: float, backlog: int, ongoing: int, current: int, running: int) -> int:
        if now - self._polled_at >= self.polling:
            self._metric, self._polled_at = backlog, now
        if self._metric > 0:
            self._active_at = now
        if now - self._active_at >= self.cooldown:
            self._recommendations.clear()
            return 0  # KEDA scales the target to zero after the cooldown
        raw = min(self.max_replicas, max(1, math.ceil(self._metric / self.target)))
        self._recommendations.append((now, raw))
        while self._recommendations and now - self._recommendations[0][0] > self.window:
            self._recommendations.popleft()
        if raw > current:  # HPA default scale-up policy
            return min(raw, max(current + 4, 2 * current), self.max_replicas)
        return max(r for _, r in self._recommendations)  # down-scale stabilisation window


@dataclass
class RayServe(Policy):
    max_replicas: int
    target_ongoing: float = 2.0
    look_back: float = 30.0
    upscale_delay: float = 30.0
    downscale_delay: float = 600.0
    interval: float = 10.0  # metrics push period
    name: str = "ray-serve"
    _samples: deque[tuple[float, int]] = field(default_factory=deque)
    _up_since: float | None = None
    _down_since: float | None = None

    def desired(self, now: float, backlog: int, ongoing: int, current: int, running: int) -> int:
        self._samples.append((now, ongoing))
        while now - self._samples[0][0] > self.look_back:
            self._samples.popleft()
        if current == 0:
            return 1 if ongoing > 0 else 0  # cold start: one replica, no delay
        if running == 0:
            return current  # requests per running replica is undefined until one runs
        average = sum(s for _, s in self._samples) / len(self._samples)
        raw = min(self.max_replicas, math.ceil(average / self.target_ongoing - 1e-9))
        if raw > current:
            self._down_since = None
            self._up_since = now if self._up_since is None else self._up_since
            if now - self._up_since >= self.upscale_delay:
                self._up_since = None
                return raw
        elif raw < current:
            self._up_since = None
            self._down_since = now if self._down_since is None else self._down_since
            if now - self._down_since >= self.downscale_delay:
                self._down_since = None
                return raw
        else:
            self._up_since = self._down_since = None
        return current
