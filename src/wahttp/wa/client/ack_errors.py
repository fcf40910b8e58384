"""Error codes the server puts in `<ack class="message" error=…>` for a message we sent.

Only codes whose meaning a reference client's source states are named; any other code is
still a failed send, reported with its number. Sources: Baileys 7
`Utils/decode-wa-message.js` SERVER_ERROR_CODES and `Socket/messages-recv.js` handleBadAck;
whatsmeow `send.go` (any non-zero `error` is ErrServerReturnedError).
"""

from __future__ import annotations

ACCOUNT_RESTRICTION = 463  # SERVER_ERROR_CODES.MessageAccountRestriction
SMAX_INVALID = 479  # SERVER_ERROR_CODES.SmaxInvalid

REASONS: dict[int, str] = {
    ACCOUNT_RESTRICTION: "missing or invalid privacy token (tctoken) for the contact, "
    "or the account is restricted from starting new chats",
    SMAX_INVALID: "stanza rejected as invalid (smax-invalid): a stale device session, "
    "malformed addressing or a privacy token on a peer message",
}


def reason(code: int | None) -> str:
    if code is None:
        return "the server refused the message"
    return REASONS.get(code, f"the server refused the message (error {code})")


def parse(value: str | None) -> int | None:
    """The numeric code of an ack's `error` attribute (None when absent or not a number)."""
    if not value:
        return None
    return int(value) if value.isdigit() else None
