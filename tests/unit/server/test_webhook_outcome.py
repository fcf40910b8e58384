"""The webhook deliverer's pure policies: what an answer means, the backoff, Retry-After and
each URL's share of the slots (server/webhooks/outcome.py, targets.claim_room)."""

from __future__ import annotations

import email.utils

import pytest

from wahttp.server.webhooks.outcome import (
    ERROR_LIMIT,
    GONE,
    Outcome,
    Verdict,
    backoff_delay,
    dead,
    decide,
    error_text,
    retry_after,
)
from wahttp.server.webhooks.targets import claim_room


def _decide(
    code: int | None,
    attempts: int = 1,
    *,
    hint: float | None = None,
    error: str | None = None,
) -> Outcome:
    return decide(
        code,
        attempts=attempts,
        max_attempts=3,
        backoff=2.0,
        max_delay=60.0,
        retry_after=hint,
        error=error,
    )


@pytest.mark.parametrize("code", [200, 201, 204, 299])
def test_a_2xx_is_delivered_even_on_the_last_attempt(code: int) -> None:
    for attempts in (1, 3):
        assert _decide(code, attempts) == Outcome(Verdict.DELIVERED, code, None, 0.0)


def test_410_is_dead_at_once_with_attempts_left() -> None:
    assert _decide(410, 1) == Outcome(Verdict.DEAD, 410, GONE)


@pytest.mark.parametrize("code", [199, 300, 301, 400, 404, 429, 500, 503])
def test_other_answers_retry_after_the_backoff_until_the_last_attempt(code: int) -> None:
    assert _decide(code, 1) == Outcome(Verdict.RETRY, code, f"HTTP {code}", 2.0)
    assert _decide(code, 2).verdict is Verdict.RETRY
    assert _decide(code, 3) == Outcome(Verdict.DEAD, code, f"HTTP {code}")
    assert _decide(code, 4).verdict is Verdict.DEAD  # past the last: never retried


def test_no_answer_retries_with_its_reason() -> None:
    assert _decide(None, 1, error="timeout after 1s") == Outcome(
        Verdict.RETRY, None, "timeout after 1s", 2.0
    )
    assert _decide(None, 3, error="ConnectError") == Outcome(Verdict.DEAD, None, "ConnectError")
    assert _decide(None, 1).error == "no answer"


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_is_honoured_for_429_and_503_up_to_the_maximum(code: int) -> None:
    assert _decide(code, hint=30.0).delay == 30.0
    assert _decide(code, hint=1.0).delay == 2.0  # never sooner than the backoff
    assert _decide(code, hint=3600.0).delay == 60.0  # capped at max_delay


@pytest.mark.parametrize("code", [500, 502, 404, None])
def test_retry_after_is_ignored_for_other_answers(code: int | None) -> None:
    assert _decide(code, hint=30.0).delay == 2.0


def test_verdicts_write_the_outbox_status_column() -> None:
    assert [v.value for v in Verdict] == ["delivered", "pending", "dead"]
    assert _decide(500).status == "pending"
    assert dead("x").status == "dead"


def test_dead_is_cut_to_the_column_limit() -> None:
    assert dead("e" * 2000) == Outcome(Verdict.DEAD, None, "e" * ERROR_LIMIT)
    assert dead("address not allowed").error == "address not allowed"


def test_backoff_doubles_from_the_base_up_to_the_maximum() -> None:
    assert [backoff_delay(n, 1.0, 300.0) for n in (0, 1, 2, 3, 9, 10)] == [
        1.0,
        1.0,
        2.0,
        4.0,
        256.0,
        300.0,
    ]
    assert backoff_delay(10_000, 1.0, 300.0) == 300.0  # no overflow
    assert backoff_delay(2, 1.0, 300.0, spread=1.5) == 3.0
    assert backoff_delay(9, 1.0, 300.0, spread=1.5) == 300.0  # jitter never passes the max


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = 1_700_000_000.0
    assert retry_after("120", now) == 120.0
    assert retry_after(" 7 ", now) == 7.0
    assert retry_after(email.utils.formatdate(now + 90, usegmt=True), now) == 90.0
    assert retry_after(email.utils.formatdate(now - 90, usegmt=True), now) == 0.0
    for bad in (None, "", "soon", "-5", "1.5"):
        assert retry_after(bad, now) is None


def test_error_text_names_the_type_and_is_bounded() -> None:
    assert error_text(ConnectionRefusedError()) == "ConnectionRefusedError"
    assert error_text(OSError("reset")) == "OSError: reset"
    assert len(error_text(ValueError("x" * 1000))) == ERROR_LIMIT


def test_claim_room_keeps_each_url_within_its_slots() -> None:
    assert claim_room([], free=10, cap=3) == ([], 3)
    assert claim_room(["a", "a", "a", "b"], free=6, cap=3) == (["a"], 2)
    assert claim_room(["a", "b", "b"], free=2, cap=3) == ([], 1)
    assert claim_room(["a", "a"], free=1, cap=2) == (["a"], 1)
