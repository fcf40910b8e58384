"""The per-session token bucket of server/ratelimit.py, on a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wahttp.server.errors import ApiError
from wahttp.server.ratelimit import SendRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = SendRateLimiter(20, 5, clock=clock)  # one every 3 s, 5 at once
    assert [limiter.take("a") for _ in range(5)] == [0.0] * 5
    assert limiter.take("a") == pytest.approx(3.0)
    assert limiter.take("b") == 0.0  # each session has its own bucket
    clock.now += 1.0
    assert limiter.take("a") == pytest.approx(2.0)  # a refused send takes nothing
    clock.now += 2.0
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(3.0)
    clock.now += 3600
    assert [limiter.take("a") for _ in range(6)][-2:] == [0.0, pytest.approx(3.0)]  # capped


def test_check_raises_429_with_a_whole_retry_after() -> None:
    clock = Clock()
    limiter = SendRateLimiter(40, 1, clock=clock)  # one every 1.5 s
    limiter.check("a")
    with pytest.raises(ApiError) as caught:
        limiter.check("a")
    err = caught.value
    assert err.status == 429 and err.code == "rate_limited"
    assert err.headers == {"Retry-After": "2"} and err.extra == {"retry_after": 2}
    clock.now += 1.4
    with pytest.raises(ApiError) as caught:
        limiter.check("a")
    assert caught.value.headers == {"Retry-After": "1"}  # 0.1 s left: at least 1


def test_rate_zero_turns_it_off() -> None:
    limiter = SendRateLimiter(0, 1)
    assert not limiter.enabled
    for _ in range(1000):
        limiter.check("a")
    with pytest.raises(ValueError):
        SendRateLimiter(-1, 1)
    with pytest.raises(ValueError):
        SendRateLimiter(10, 0)


def test_full_buckets_are_pruned() -> None:
    clock = Clock()
    limiter = SendRateLimiter(60, 2, clock=clock)
    for i in range(1024):
        limiter.take(f"s{i}")
    limiter.take("busy")
    limiter.take("busy")
    clock.now += 5  # every bucket but the two-token ones refilled
    limiter.take("new")
    assert len(limiter._buckets) < 10


@given(
    rate=st.floats(1, 600),
    burst=st.integers(1, 20),
    gaps=st.lists(st.floats(0, 30), max_size=60),
)
def test_never_more_than_burst_plus_rate_over_time(
    rate: float, burst: int, gaps: list[float]
) -> None:
    clock = Clock()
    limiter = SendRateLimiter(rate, burst, clock=clock)
    start = clock.now
    allowed = 0
    for gap in gaps:
        clock.now += gap
        wait = limiter.take("s")
        if wait == 0:
            allowed += 1
        else:
            assert wait > 0
    assert allowed <= burst + (clock.now - start) * rate / 60 + 1e-6
