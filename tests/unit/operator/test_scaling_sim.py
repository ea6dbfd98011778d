"""The GPU pool simulator (benchmarks/scaling_sim.py) drives the operator's own policy."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hark_operator.scaling import policy

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


@pytest.fixture(scope="module")
def sim():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import scaling_policies
        import scaling_sim
        import scaling_traces

        yield scaling_sim, scaling_policies, scaling_traces
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_the_simulator_calls_the_operators_policy_function(sim) -> None:  # type: ignore[no-untyped-def]
    _, policies, _ = sim
    assert policies.decide is policy.decide


def test_a_small_job_finishes_and_the_pool_returns_to_zero(sim) -> None:  # type: ignore[no-untyped-def]
    simulate, policies, traces = sim[0].simulate, sim[1], sim[2]
    trace = traces.huge_job(files=200)
    hark = policies.Hark(
        policy.ScalingPolicy(items_per_replica=2, max_replicas=4, scale_down_delay_seconds=60)
    )
    result = simulate(trace, hark, startup=60, in_flight_cap=32)
    fixed = simulate(trace, policies.Fixed(4), startup=60, in_flight_cap=32)
    assert result.unfinished == 0 and fixed.unfinished == 0
    assert result.peak == 4 and hark.state is not None and hark.state.floor == 0
    assert fixed.replica_hours == pytest.approx(4 * trace.horizon / 3600, rel=0.01)
    assert result.replica_hours < fixed.replica_hours
    # Deterministic: the same trace and policy give the same figures.
    again = simulate(
        traces.huge_job(files=200), policies.Hark(hark.policy), startup=60, in_flight_cap=32
    )
    assert again == result
