"""Per-session send rate limits: a token bucket per session, in this process.

Each session may send `burst` messages at once, then `per_minute` a minute (WAHTTP_SEND_BURST,
WAHTTP_SEND_RATE; a rate of 0 turns the limit off). The defaults (5 at once, 20 a minute) keep
to a human pace, which makes an account less likely to be flagged as a bot by WhatsApp.

The same buckets limit new pairing codes (`pair_limiter`: WAHTTP_PAIR_BURST at once, then
WAHTTP_PAIR_RATE a minute): asking WhatsApp for codes in a loop is what gets a number flagged.

A send over the limit is answered 429 with `Retry-After` (whole seconds, rounded up) and the
same number as `retry_after` in the error body. The buckets live in this process: with several
workers each limits the sessions it serves (a session is owned by one worker).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from wahttp.server.errors import ApiError

_PRUNE_ABOVE = 1024


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class SendRateLimiter:
    """Token buckets keyed by session id: `burst` tokens, refilled at `per_minute` a minute."""

    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        subject: str = "messages",
    ) -> None:
        if per_minute < 0 or burst < 1:
            raise ValueError("the rate must be >= 0 and the burst >= 1")
        self.subject = subject  # what is limited, for the 429's message
        self.per_minute = per_minute
        self.burst = burst
        self._per_second = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    @property
    def enabled(self) -> bool:
        return self._per_second > 0

    def take(self, key: str) -> float:
        """Take a token: 0.0 when allowed, else the seconds until one is free (none taken)."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _PRUNE_ABOVE:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        else:
            elapsed = max(0.0, now - bucket.at)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self._per_second)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._per_second

    def check(self, key: str) -> None:
        """Take a token or raise the 429 ApiError (with Retry-After)."""
        wait = self.take(key)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ApiError(
                429,
                "rate_limited",
                f"too many {self.subject} for this session: at most {self.burst} at once and "
                f"{self.per_minute:g} a minute; retry in {seconds} s",
                headers={"Retry-After": str(seconds)},
                retry_after=seconds,
            )

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)

    def _prune(self, now: float) -> None:
        """Drop buckets that have refilled: a full bucket is the same as none."""
        full = [
            key
            for key, b in self._buckets.items()
            if b.tokens + (now - b.at) * self._per_second >= self.burst
        ]
        for key in full:
            del self._buckets[key]


def send_limiter(request: Request) -> SendRateLimiter:
    """The app's limiter (`app.state.send_limiter`, set by create_app)."""
    limiter: SendRateLimiter = request.app.state.send_limiter
    return limiter


SendLimiterDep = Annotated[SendRateLimiter, Depends(send_limiter)]


def pair_limiter(request: Request) -> SendRateLimiter:
    """The app's limiter of new pairing codes (`app.state.pair_limiter`, set by create_app)."""
    limiter: SendRateLimiter = request.app.state.pair_limiter
    return limiter


PairLimiterDep = Annotated[SendRateLimiter, Depends(pair_limiter)]
