"""Grouping segments into model batches under a frame budget.

A batch costs its longest segment times its size (shorter rows are padded),
so segments are taken longest first and a batch stops growing when the padded
cost would pass the budget. Plain data in, plain data out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Sized(Generic[T]):
    item: T
    frames: int


def take_batch(
    pending: Sequence[Sized[T]], frame_budget: int, max_items: int
) -> tuple[list[Sized[T]], list[Sized[T]]]:
    """Split `pending` (sorted longest first) into (next batch, the rest).

    A single segment over the budget still forms a batch of one: the budget
    bounds padding and memory, it never refuses work.
    """
    if not pending:
        return [], []
    longest = pending[0].frames
    size = 1
    while size < len(pending) and size < max_items and longest * (size + 1) <= frame_budget:
        size += 1
    return list(pending[:size]), list(pending[size:])


def sort_longest_first(items: Sequence[Sized[T]]) -> list[Sized[T]]:
    return sorted(items, key=lambda s: -s.frames)


def plan_batches(items: Sequence[Sized[T]], frame_budget: int, max_items: int) -> list[list[T]]:
    """All batches for a fixed set of items."""
    rest = sort_longest_first(items)
    batches: list[list[T]] = []
    while rest:
        batch, rest = take_batch(rest, frame_budget, max_items)
        batches.append([s.item for s in batch])
    return batches
