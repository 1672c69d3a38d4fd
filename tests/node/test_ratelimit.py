from __future__ import annotations

import pytest

from node.ratelimit import TokenBucket


def test_burst_then_refill() -> None:
    bucket = TokenBucket(rate=2, burst=3)
    assert [bucket.take("a", 0.0).allowed for _ in range(4)] == [True, True, True, False]
    refused = bucket.take("a", 0.0)
    assert refused.retry_after_s == pytest.approx(0.5)
    assert bucket.take("a", 0.5).allowed
    assert not bucket.take("a", 0.5).allowed
    assert bucket.take("b", 0.5).allowed  # keys are independent


def test_clock_going_backwards_mints_nothing() -> None:
    bucket = TokenBucket(rate=1, burst=1)
    assert bucket.take("a", 10.0).allowed
    assert not bucket.take("a", 5.0).allowed


def test_key_count_is_bounded() -> None:
    bucket = TokenBucket(rate=1, burst=1, max_keys=10)
    for i in range(100):
        bucket.take(str(i), 0.0)
    assert len(bucket) == 10


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)
