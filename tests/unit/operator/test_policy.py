"""The scaling policy: up at once, down one step after the delay, bounds, zero."""

from __future__ import annotations

import pytest

from hark_operator.scaling.policy import ScaleState, ScalingPolicy, decide

POLICY = ScalingPolicy(
    items_per_replica=10, min_replicas=0, max_replicas=5, scale_down_delay_seconds=60
)


def drive(policy: ScalingPolicy, steps: list[tuple[float, float]], floor: int = 0) -> list[int]:
    """Floors after each (time, backlog) step."""
    state = ScaleState.initial(policy, floor, steps[0][0])
    floors = []
    for now, backlog in steps:
        d = decide(policy, backlog, state, now)
        state = d.state
        floors.append(d.floor)
    return floors


@pytest.mark.parametrize(
    ("backlog", "need"), [(0, 0), (1, 1), (10, 1), (11, 2), (49, 5), (1000, 5)]
)
def test_need_is_ceil_of_backlog_over_items_per_replica_within_bounds(
    backlog: int, need: int
) -> None:
    assert POLICY.need(backlog) == need


def test_scales_up_at_once() -> None:
    assert drive(POLICY, [(0, 0), (1, 35)]) == [0, 4]


def test_scales_down_one_step_only_after_the_delay() -> None:
    # Need was last seen at t=0; from t=60 on, one step per evaluation.
    steps = [(0, 40), (10, 0), (50, 0), (59, 0), (60, 0), (61, 0), (62, 0), (63, 0), (64, 0)]
    assert drive(POLICY, steps) == [4, 4, 4, 4, 3, 2, 1, 0, 0]


def test_each_level_waits_its_own_delay_when_the_backlog_drains_slowly() -> None:
    # 40 → 30 at t=10 (level 4 last needed at 10), → 0 at t=40 (level 3 last needed at 40).
    steps = [
        (0, 40),
        (10, 40),
        (20, 30),
        (40, 30),
        (50, 0),
        (69, 0),
        (70, 0),
        (71, 0),
        (99, 0),
        (100, 0),
    ]
    assert drive(POLICY, steps) == [4, 4, 4, 4, 4, 4, 3, 3, 3, 2]


def test_a_new_need_resets_the_wait() -> None:
    steps = [(0, 20), (30, 0), (55, 15), (80, 0), (110, 0), (115, 0), (116, 0)]
    # both levels were needed again at 55: they go from 115 on, not from 60
    assert drive(POLICY, steps) == [2, 2, 2, 2, 2, 1, 0]


def test_bounds_hold() -> None:
    policy = ScalingPolicy(
        items_per_replica=1, min_replicas=1, max_replicas=3, scale_down_delay_seconds=0
    )
    # A floor found above max is clamped to it, and never goes below min.
    floors = drive(policy, [(0, 0), (1, 100), (2, 0), (3, 0), (4, 0), (5, 0)], floor=7)
    assert floors == [2, 3, 2, 1, 1, 1]


def test_zero_is_reached_when_min_is_zero_and_nothing_waits() -> None:
    policy = ScalingPolicy(
        items_per_replica=4, min_replicas=0, max_replicas=2, scale_down_delay_seconds=5
    )
    floors = drive(policy, [(0, 8), (1, 0), (6, 0), (7, 0), (8, 0)])
    assert floors == [2, 2, 1, 0, 0]


def test_a_restart_keeps_the_floor_for_a_full_delay() -> None:
    state = ScaleState.initial(POLICY, 3, now=1000)
    assert decide(POLICY, 0, state, 1059).floor == 3
    assert decide(POLICY, 0, state, 1060).floor == 2


def test_decision_reports_what_happened() -> None:
    state = ScaleState.initial(POLICY, 1, now=0)
    up = decide(POLICY, 25, state, 1)
    assert (up.reason, up.previous, up.floor, up.changed) == ("up", 1, 3, True)
    hold = decide(POLICY, 0, up.state, 2)
    assert (hold.reason, hold.changed) == ("hold", False)


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError):
        ScalingPolicy(min_replicas=3, max_replicas=2)
    with pytest.raises(ValueError):
        ScalingPolicy(items_per_replica=0)
