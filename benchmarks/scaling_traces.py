"""Arrival traces for the GPU pool simulator: deterministic, seeded, plain data.

Each item is (arrival second, GPU service seconds). Service time is the
item's audio length times a GPU real-time factor, so long files cost more;
audio lengths are log-normal (most calls are a few minutes, a few are long).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

RTF = 0.03  # GPU seconds per audio second for one replica (batched SenseVoiceSmall)


@dataclass(frozen=True)
class Trace:
    name: str
    items: list[tuple[float, float]]  # (arrival, service seconds), sorted by arrival
    horizon: float  # seconds simulated (the pool may still be draining at the end)
    note: str


def _service(rng: random.Random) -> float:
    minutes = min(60.0, rng.lognormvariate(math.log(4.0), 0.8))  # median 4 min of audio
    return max(1.0, minutes * 60 * RTF)


def _poisson(rng: random.Random, rate: float, start: float, end: float) -> list[float]:
    out, t = [], start
    while rate > 0:
        t += rng.expovariate(rate)
        if t >= end:
            break
        out.append(t)
    return out


def steady(seed: int = 1, hours: float = 4.0, rate: float = 0.25) -> Trace:
    rng = random.Random(seed)
    arrivals = _poisson(rng, rate, 0, hours * 3600)
    return Trace("steady", [(t, _service(rng)) for t in arrivals], hours * 3600,
                 f"Poisson {rate}/s for {hours:g} h")  # fmt: skip


def bursty(seed: int = 2, hours: float = 6.0) -> Trace:
    """A trickle, and every 45 minutes a burst of 400 uploads within 2 minutes."""
    rng = random.Random(seed)
    arrivals = _poisson(rng, 0.01, 0, hours * 3600)
    for start in range(600, int(hours * 3600) - 1800, 2700):
        arrivals += [start + rng.uniform(0, 120) for _ in range(400)]
    arrivals.sort()
    return Trace("bursty", [(t, _service(rng)) for t in arrivals], hours * 3600,
                 "0.01/s trickle + 400 files in 2 min every 45 min")  # fmt: skip


def daily(seed: int = 3, peak: float = 0.6) -> Trace:
    """A working day: near nothing at night, a broad peak in the afternoon."""
    rng = random.Random(seed)
    arrivals: list[float] = []
    for hour in range(24):
        shape = max(0.0, math.sin(math.pi * (hour - 6) / 14)) if 6 <= hour <= 20 else 0.0
        arrivals += _poisson(rng, 0.005 + peak * shape, hour * 3600, (hour + 1) * 3600)
    return Trace("daily", [(t, _service(rng)) for t in arrivals], 24 * 3600,
                 f"24 h, 0.005/s at night to {peak}/s at 14:00")  # fmt: skip


def huge_job(seed: int = 4, files: int = 6000) -> Trace:
    """One Batch job over a big prefix: every file waits from the moment it is applied."""
    rng = random.Random(seed)
    return Trace("huge-job", [(600.0, _service(rng)) for _ in range(files)], 4 * 3600,
                 f"{files} files at once, then nothing")  # fmt: skip


ALL = {"steady": steady, "bursty": bursty, "daily": daily, "huge-job": huge_job}
