"""Errors of the Signal layer; every one is a SignalError and so a WAError."""

from __future__ import annotations

from wahttp.wa.errors import WAError


class SignalError(WAError):
    """Base of every failure raised by wahttp.wa.signal."""


class InvalidKey(SignalError):
    """A public key is malformed or unusable, or a signed pre-key's signature does not verify."""


class UntrustedIdentity(SignalError):
    """The peer's identity key is not the one the caller trusts (raised by callers, not here)."""


class InvalidMessage(SignalError):
    """A message is malformed, fails its MAC or matches none of the record's sessions."""


class DuplicateMessage(SignalError):
    """The message's key was used already: the message was decrypted before."""


class NoSession(SignalError):
    """There is no session (or no open session) to encrypt or decrypt with."""


class InvalidKeyId(SignalError):
    """A pre-key message names a one-time or signed pre-key that the caller could not supply."""


class InvalidRecord(SignalError):
    """A stored session record does not have libsignal's serialised shape."""
