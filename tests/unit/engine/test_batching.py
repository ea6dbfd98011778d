"""Frame-budget batching: padded cost bounded, longest first, nothing refused."""

from __future__ import annotations

from hark_serving.engine.packing import Sized, plan_batches, take_batch


def test_a_batch_grows_while_its_padded_cost_fits_the_budget() -> None:
    items = [Sized("a", 100), Sized("b", 90), Sized("c", 80), Sized("d", 10)]
    batch, rest = take_batch(items, frame_budget=300, max_items=10)
    assert [b.item for b in batch] == ["a", "b", "c"]  # 3 x 100 = 300
    assert [r.item for r in rest] == ["d"]


def test_max_items_caps_a_batch() -> None:
    batch, _ = take_batch([Sized(i, 1) for i in range(10)], frame_budget=1000, max_items=4)
    assert len(batch) == 4


def test_a_segment_over_the_budget_still_runs_alone() -> None:
    assert plan_batches([Sized("big", 5000), Sized("s", 10)], 1000, 8) == [["big"], ["s"]]


def test_every_item_is_planned_once_longest_first() -> None:
    items = [Sized(i, (i * 37) % 101 + 1) for i in range(50)]
    batches = plan_batches(items, frame_budget=400, max_items=16)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(50))
    lengths = [(i * 37) % 101 + 1 for i in flat]
    assert lengths == sorted(lengths, reverse=True)
    for b in batches:
        assert len(b) == 1 or max((i * 37) % 101 + 1 for i in b) * len(b) <= 400
