"""Benchmark: GPU replica-hours and time-to-result of autoscaling policies, simulated.

A deterministic, trace-driven simulation of the Transcriber pool (one-second
steps): items arrive (scaling_traces.py), wait in a FIFO queue, and each
replica serves one at a time; a replica is billed from the moment it is
asked for (node start, image pull, model load: `--startup` seconds before it
serves) until it has drained its last item after being let go. Every policy
(scaling_policies.py) sees the same arrivals; the Hark policy is the
operator's own function, `hark_operator.scaling.policy.decide`.

    python benchmarks/scaling_sim.py                 # all traces, all policies
    python benchmarks/scaling_sim.py --trace bursty  # one trace

Printed per trace and policy: GPU replica-hours, time-to-result p50/p95
(arrival to transcript) in minutes, the largest pool, and the ratio of each
alternative's replica-hours to Hark's.
"""

from __future__ import annotations

import argparse
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "benchmarks")]

from scaling_policies import Fixed, Hark, Keda, Policy, RayServe  # noqa: E402
from scaling_traces import ALL, Trace  # noqa: E402

from hark_operator.scaling.policy import ScalingPolicy  # noqa: E402


@dataclass
class _Replica:
    ready_at: float
    busy_until: float = 0.0
    draining: bool = False


@dataclass(frozen=True)
class Result:
    policy: str
    replica_hours: float
    p50: float  # seconds
    p95: float
    peak: int
    unfinished: int


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def simulate(trace: Trace, policy: Policy, *, startup: float, in_flight_cap: int) -> Result:
    arrivals = deque(trace.items)
    queue: deque[tuple[float, float]] = deque()  # (arrival, service)
    replicas: list[_Replica] = []
    in_service = 0
    waits: list[float] = []
    billed = 0.0
    peak = 0
    next_decision = 0.0
    t = 0.0
    end = trace.horizon
    # Past the horizon, run on until the work is done and the pool is back at rest:
    # replicas an autoscaler keeps idle after the last item are billed too.
    while t < end or queue or in_service or len(replicas) > policy.at_rest:
        if t > trace.horizon + 48 * 3600:
            break  # a policy that never finishes
        while arrivals and arrivals[0][0] <= t:
            queue.append(arrivals.popleft())
        for r in replicas:  # finish items
            if 0 < r.busy_until <= t:
                r.busy_until = 0.0
                in_service -= 1
        replicas = [r for r in replicas if not (r.draining and r.busy_until == 0.0)]
        for r in replicas:  # start items on idle, running replicas
            if not queue:
                break
            if r.ready_at <= t and r.busy_until == 0.0 and not r.draining:
                arrived, service = queue.popleft()
                r.busy_until = t + service
                in_service += 1
                waits.append(t + service - arrived)
        if t >= next_decision:
            active = [r for r in replicas if not r.draining]
            running = sum(1 for r in active if r.ready_at <= t)
            backlog = len(queue) + in_service
            want = policy.desired(t, backlog, min(backlog, in_flight_cap), len(active), running)
            if want > len(active):
                replicas += [_Replica(ready_at=t + startup) for _ in range(want - len(active))]
            elif want < len(active):
                # Let go of what costs least to lose: starting, then idle, then busy (drains).
                order = sorted(active, key=lambda r: (r.ready_at <= t, r.busy_until > 0))
                for r in order[: len(active) - want]:
                    r.draining = True
                replicas = [r for r in replicas if not (r.draining and (r.busy_until == 0.0))]
            next_decision = t + policy.interval
        billed += len(replicas)
        peak = max(peak, len(replicas))
        t += 1.0
    unfinished = len(queue) + len(arrivals) + in_service
    return Result(
        policy.name,
        billed / 3600,
        percentile(waits, 0.5),
        percentile(waits, 0.95),
        peak,
        unfinished,
    )


def policies(args: argparse.Namespace, trace: Trace) -> list[Policy]:
    mean_load = sum(s for _, s in trace.items) / trace.horizon
    hark = ScalingPolicy(
        items_per_replica=args.items_per_replica,
        min_replicas=0,
        max_replicas=args.max_replicas,
        scale_down_delay_seconds=args.delay,
    )
    return [
        Hark(hark, interval=args.interval),
        Fixed(args.max_replicas, name=f"fixed-peak ({args.max_replicas})"),
        Fixed(
            max(1, round(1.25 * mean_load + 0.5)),
            name=f"fixed-mean ({max(1, round(1.25 * mean_load + 0.5))})",
        ),
        Keda(target=args.items_per_replica, max_replicas=args.max_replicas),
        RayServe(max_replicas=args.max_replicas),
    ]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--trace", choices=sorted(ALL), action="append", help="default: all")
    p.add_argument("--startup", type=float, default=120.0, help="seconds from asking to serving")
    p.add_argument("--max-replicas", type=int, default=16)
    p.add_argument("--items-per-replica", type=float, default=2.0, help="Hark's and KEDA's target")
    p.add_argument("--delay", type=float, default=180.0, help="Hark's scale-down delay (s)")
    p.add_argument("--interval", type=float, default=10.0, help="Hark's scaling interval (s)")
    p.add_argument("--in-flight", type=int, default=32, help="the operator's HARK_MAX_IN_FLIGHT")
    args = p.parse_args()

    print(
        f"startup {args.startup:g}s, max {args.max_replicas} replicas, Hark: "
        f"{args.items_per_replica:g} items/replica, {args.delay:g}s down-scale delay, "
        f"every {args.interval:g}s; in flight ≤ {args.in_flight}\n"
    )
    header = f"{'trace':<9} {'policy':<16} {'GPU h':>8} {'vs Hark':>7} {'p50 min':>8} {'p95 min':>8} {'peak':>5}"
    print(header)
    print("-" * len(header))
    for name in args.trace or list(ALL):
        trace = ALL[name]()
        results = [simulate(trace, pol, startup=args.startup, in_flight_cap=args.in_flight)
                   for pol in policies(args, trace)]  # fmt: skip
        base = results[0].replica_hours
        for r in results:
            left = f"  ({r.unfinished} unfinished)" if r.unfinished else ""
            print(
                f"{name:<9} {r.policy:<16} {r.replica_hours:8.1f} {r.replica_hours / base:6.2f}x "
                f"{r.p50 / 60:8.1f} {r.p95 / 60:8.1f} {r.peak:5d}{left}"
            )
        print(f"{'':<9} {trace.note}, {len(trace.items)} files, "
              f"{sum(s for _, s in trace.items) / 3600:.1f} GPU h of work\n")  # fmt: skip


if __name__ == "__main__":
    main()
