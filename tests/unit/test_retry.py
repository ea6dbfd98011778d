"""The one retry policy: exponential, full jitter, capped; and its loop."""

from __future__ import annotations

import asyncio

import pytest

from hark_serving.retry import RetryPolicy, retry_async


def test_the_ceiling_grows_exponentially_and_stops_at_the_cap() -> None:
    p = RetryPolicy(base=2, factor=2, cap=10)
    assert [p.ceiling(n) for n in (1, 2, 3, 4, 5)] == [2, 4, 8, 10, 10]
    assert p.ceiling(100_000) == 10  # no overflow however long an outage lasts


def test_full_jitter_draws_between_zero_and_the_ceiling() -> None:
    p = RetryPolicy(base=4, cap=100)
    assert p.delay(1, rand=0.0) == 4
    assert p.delay(1, rand=0.75) == 1
    assert p.delay(2, rand=0.5) == 4
    assert all(0 <= p.delay(3) <= 16 for _ in range(200))
    assert RetryPolicy(base=4, jitter=0.0).delay(1, rand=0.9) == 4


def test_attempts_bound_the_tries_and_none_means_no_bound() -> None:
    assert [RetryPolicy(attempts=3).allows(n) for n in (1, 2, 3)] == [True, True, False]
    assert RetryPolicy(attempts=None).allows(10**6)


def test_a_bad_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=2)
    with pytest.raises(ValueError, match="invalid"):
        RetryPolicy(factor=0.5)


def test_retry_async_retries_what_it_is_told_and_no_more() -> None:
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    async def main() -> None:
        calls = 0

        async def flaky() -> str:
            nonlocal calls
            calls += 1
            if calls < 3:
                raise ConnectionError("down")
            return "ok"

        policy = RetryPolicy(base=1, cap=1.5, attempts=3)
        assert await retry_async(flaky, policy, retry_on=(ConnectionError,), sleep=sleep) == "ok"
        assert calls == 3 and len(waits) == 2 and all(0 <= w <= 1.5 for w in waits)

        calls = -10
        with pytest.raises(ConnectionError):
            await retry_async(flaky, policy, retry_on=(ConnectionError,), sleep=sleep)
        assert calls == -7  # three tries, then the last error

        async def wrong() -> str:
            raise ValueError("a bug")

        with pytest.raises(ValueError):
            await retry_async(wrong, policy, retry_on=(ConnectionError,), sleep=sleep)

    asyncio.run(main())
