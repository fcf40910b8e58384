"""Signing secrets and the X-Wahttp-Signature HMAC (a receiver can copy `verify_signature`).

The signed message is the decimal X-Wahttp-Timestamp, one ".", then the raw body bytes; the key
is the secret's UTF-8 bytes. Each attempt is signed afresh with the time it is sent, so a
receiver that rejects old timestamps (`tolerance`) is not open to replays.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import unicodedata

SIGNATURE_PREFIX = "sha256="
MIN_SECRET_LENGTH = 16


def check_secret(secret: str) -> str:
    """A signing secret of MIN_SECRET_LENGTH+ characters without control characters."""
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"the webhook secret must have at least {MIN_SECRET_LENGTH} characters")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in secret):
        raise ValueError("the webhook secret must not contain control characters")
    return secret


def new_secret() -> str:
    """A random signing secret: 64 hex digits (256 bits)."""
    return secrets.token_hex(32)


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The X-Wahttp-Signature value: `sha256=` + hex HMAC-SHA256(secret, f"{timestamp}." + body)."""
    message = str(timestamp).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify_signature(
    secret: str,
    timestamp: int | str,
    body: bytes,
    header: str,
    *,
    tolerance: float | None = 300.0,
    now: float | None = None,
) -> bool:
    """Check a webhook's signature (timing-safe) and, unless tolerance is None, its age.

    `timestamp` is the X-Wahttp-Timestamp header, `body` the raw request body, `header` the
    X-Wahttp-Signature header. A receiver can copy this function as it is.
    """
    try:
        ts = int(str(timestamp).strip())
    except ValueError:
        return False
    if tolerance is not None:
        current = time.time() if now is None else now
        if abs(current - ts) > tolerance:
            return False
    expected = sign(secret, ts, body)
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("utf-8", "replace"))
