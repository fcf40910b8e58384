"""What one delivery attempt's answer means for its outbox row: a pure policy, no I/O.

A 2xx answer is delivered; 410 Gone is dead at once (the receiver asks us to stop); any other
answer, a timeout or a connection error is retried with exponential backoff and jitter
(`Retry-After` of a 429 or 503 is honoured up to the maximum delay), until `max_attempts`
attempts, after which the row is dead (`redeliver` queues it again). A refused address, data
that cannot be opened or a lease lost after the last attempt are dead at once (`dead`).
"""

from __future__ import annotations

import contextlib
import email.utils
import enum
from dataclasses import dataclass
from datetime import UTC

ERROR_LIMIT = 500
GONE = "410 Gone: the receiver asked to stop"
# Answers whose Retry-After is honoured.
_HINTED = frozenset({429, 503})


class Verdict(enum.Enum):
    """What an attempt does to its row; each value is the row status it writes."""

    # A 2xx answer: the row is done, never sent again.
    DELIVERED = "delivered"
    # Failed with attempts left: pending again after a delay.
    RETRY = "pending"
    # No more attempts (or a refusal that no retry can change): kept for `redeliver`.
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Outcome:
    """An attempt's verdict, the HTTP status (None: no answer), the error and the delay."""

    verdict: Verdict
    code: int | None
    error: str | None
    delay: float = 0.0

    @property
    def status(self) -> str:
        """The outbox row's new `status`."""
        return self.verdict.value


def dead(error: str, code: int | None = None) -> Outcome:
    """Dead at once, whatever the attempts left (the error cut to the column's limit)."""
    return Outcome(Verdict.DEAD, code, error[:ERROR_LIMIT])


def backoff_delay(attempt: int, base: float, maximum: float, spread: float = 1.0) -> float:
    """Seconds before the retry that follows attempt `attempt` (1-based): `base` doubled per
    attempt up to `maximum`, times `spread` (the jitter factor), never above `maximum`."""
    nominal = min(maximum, base * 2.0 ** min(max(attempt - 1, 0), 32))
    return min(maximum, nominal * spread)


def decide(
    code: int | None,
    *,
    attempts: int,
    max_attempts: int,
    backoff: float,
    max_delay: float,
    retry_after: float | None = None,
    error: str | None = None,
) -> Outcome:
    """The outcome of attempt number `attempts` that got HTTP `code` (None: no answer, and
    `error` says why). `backoff` is the delay the backoff gives this attempt; `retry_after`
    the answer's Retry-After in seconds, honoured for 429 and 503 up to `max_delay`."""
    if code is not None and 200 <= code < 300:
        return Outcome(Verdict.DELIVERED, code, None)
    if code == 410:
        return Outcome(Verdict.DEAD, code, GONE)
    why = f"HTTP {code}" if code is not None else (error or "no answer")
    if attempts >= max_attempts:
        return Outcome(Verdict.DEAD, code, why)
    delay = backoff
    if retry_after is not None and code in _HINTED:
        delay = max(delay, min(retry_after, max_delay))
    return Outcome(Verdict.RETRY, code, why, delay)


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - now)
    return None


def error_text(exc: BaseException) -> str:
    """An exception as `last_error`: its type and message, cut to the column's limit."""
    text = str(exc).strip()
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:ERROR_LIMIT]
