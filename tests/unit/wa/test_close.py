"""Close codes (wa/close.py): every code's meaning and what a session does after it."""

from __future__ import annotations

import json

import pytest

from wahttp.wa.close import CloseCode, Next, decide, is_fatal, is_logged_out, needs_linked, restarts

# Every member, linked and not: what the session manager must do next.
EXPECTED: dict[CloseCode, tuple[Next, Next]] = {
    CloseCode.LOGGED_OUT: (Next.LOGGED_OUT, Next.LOGGED_OUT),
    CloseCode.TEMP_BANNED: (Next.FATAL, Next.FATAL),
    CloseCode.LOCKED: (Next.LOGGED_OUT, Next.LOGGED_OUT),
    CloseCode.OUTDATED: (Next.FATAL, Next.FATAL),
    CloseCode.UNKNOWN_LOGOUT: (Next.LOGGED_OUT, Next.LOGGED_OUT),
    CloseCode.CONNECTION_LOST: (Next.RECONNECT, Next.STOP),  # == QR_ENDED
    CloseCode.BAD_USER_AGENT: (Next.FATAL, Next.FATAL),
    CloseCode.MD_NOT_ENABLED: (Next.FATAL, Next.FATAL),
    CloseCode.TRANSPORT_CLOSED: (Next.RECONNECT, Next.RECONNECT),
    CloseCode.REPLACED: (Next.REPLACED, Next.REPLACED),
    CloseCode.BAD_SESSION: (Next.RECONNECT, Next.RECONNECT),  # == FAILED
    CloseCode.UNAVAILABLE: (Next.RECONNECT, Next.RECONNECT),
    CloseCode.RESTART: (Next.RESTART, Next.RESTART),
    CloseCode.CERTIFICATE_REFUSED: (Next.RECONNECT, Next.RECONNECT),
}


def test_every_code_has_an_expectation() -> None:
    assert set(EXPECTED) == set(CloseCode)


@pytest.mark.parametrize("code", list(CloseCode), ids=lambda c: c.name)
def test_what_comes_after_each_code(code: CloseCode) -> None:
    when_linked, when_not = EXPECTED[code]
    assert decide(code, linked=True) is when_linked
    assert decide(code, linked=False) is when_not
    # Codes arrive as plain ints from the wire and the status.
    assert decide(int(code), linked=True) is when_linked
    # Only where the answer depends on `linked` may a caller need to look it up.
    assert needs_linked(code) == (when_linked is not when_not)


@pytest.mark.parametrize("code", [0, 200, 404, 429, 499, 502, 1000, 4000])
def test_a_code_whatsapp_may_add_reconnects(code: int) -> None:
    assert decide(code, linked=True) is Next.RECONNECT
    assert decide(code, linked=False) is Next.RECONNECT
    assert not (is_logged_out(code) or is_fatal(code) or restarts(code) or needs_linked(code))


def test_the_numbers_are_whatsapps_and_baileys() -> None:
    # Baileys' DisconnectReason (Types/index.ts) and WhatsApp's failure reasons.
    assert {c.name: int(c) for c in CloseCode} == {
        "LOGGED_OUT": 401,
        "TEMP_BANNED": 402,
        "LOCKED": 403,
        "OUTDATED": 405,
        "UNKNOWN_LOGOUT": 406,
        "CONNECTION_LOST": 408,
        "BAD_USER_AGENT": 409,
        "MD_NOT_ENABLED": 411,
        "TRANSPORT_CLOSED": 428,
        "REPLACED": 440,
        "BAD_SESSION": 500,
        "UNAVAILABLE": 503,
        "RESTART": 515,
        "CERTIFICATE_REFUSED": 495,
    }
    assert CloseCode(408).name == "CONNECTION_LOST" and CloseCode["QR_ENDED"] == 408
    assert CloseCode(500).name == "BAD_SESSION" and CloseCode["FAILED"] == 500


def test_a_code_is_written_as_its_number() -> None:
    # The status's lastDisconnect.code and log lines must not change with the type.
    assert json.dumps({"code": CloseCode.REPLACED}) == '{"code": 440}'
    assert f"{CloseCode.RESTART}" == "515" and str(CloseCode.LOGGED_OUT) == "401"
