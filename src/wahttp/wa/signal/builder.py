"""X3DH session setup as libsignal-node's SessionBuilder does it, for both roles.

The initiator builds from the peer's pre-key bundle; the responder from the header of the
peer's first pkmsg and its own pre-keys.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from wahttp.wa.crypto import KeyPair, hkdf, verify, with_key_type
from wahttp.wa.signal.errors import InvalidKey, InvalidMessage
from wahttp.wa.signal.messages import PreKeyWhisper, public_key
from wahttp.wa.signal.ratchet import ZERO_SALT, add_chain, root_step
from wahttp.wa.signal.record import (
    BaseKeyType,
    ChainType,
    PendingPreKey,
    SessionEntry,
    SessionRecord,
)

X3DH_INFO = b"WhisperText"
# Signal's X3DH input starts with 32 0xFF bytes (the "discontinuity bytes" of Curve25519).
X3DH_PREFIX = b"\xff" * 32


@dataclass(frozen=True, slots=True)
class PreKeyBundle:
    """A device's published keys; public keys as 32 or 33 (type byte 5 first) bytes."""

    registration_id: int
    device_id: int
    identity_key: bytes = field(repr=False)
    signed_pre_key_id: int
    signed_pre_key: bytes = field(repr=False)
    signed_pre_key_signature: bytes = field(repr=False)
    pre_key_id: int | None = None
    pre_key: bytes | None = field(default=None, repr=False)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def build_session(
    record: SessionRecord | None,
    our_identity: KeyPair,
    bundle: PreKeyBundle,
    *,
    base_key: KeyPair | None = None,
    ratchet_key: KeyPair | None = None,
    now: int | None = None,
) -> SessionRecord:
    """Start a session as initiator (libsignal-node's initOutgoing); returns the record.

    `record` (changed in place) keeps its previous open session as a closed one. The new
    session sends pkmsgs until the peer answers. InvalidKey when a bundle key is malformed or
    the signed pre-key's signature does not verify against the bundle's identity. `base_key`
    and `ratchet_key` replace the fresh key pairs (for known-answer tests); `now` is in ms.
    """
    identity = public_key(bundle.identity_key, InvalidKey)
    signed = public_key(bundle.signed_pre_key, InvalidKey)
    one_time = None if bundle.pre_key is None else public_key(bundle.pre_key, InvalidKey)
    if one_time is not None and bundle.pre_key_id is None:
        raise InvalidKey("a one-time pre-key without its id")
    # libsignal-node skips this check (verifySignature(..., isInit=true)); libsignal does not.
    if not verify(identity, signed, bundle.signed_pre_key_signature):
        raise InvalidKey("the signed pre-key's signature does not verify")
    base = base_key or KeyPair.generate()
    ratchet = ratchet_key or KeyPair.generate()
    now = now_ms() if now is None else now
    try:
        secret = X3DH_PREFIX + our_identity.dh(signed) + base.dh(identity) + base.dh(signed)
        if one_time is not None:
            secret += base.dh(one_time)
        root, chain_key = root_step(_master_key(secret), ratchet.private, signed)
    except ValueError as exc:
        raise InvalidKey("unusable public key in the bundle") from exc
    entry = SessionEntry(
        registration_id=bundle.registration_id,
        base_key=with_key_type(base.public),
        base_key_type=BaseKeyType.OURS,
        remote_identity=identity,
        root_key=root,
        ratchet_key=ratchet,
        last_remote_ratchet=signed,
        previous_counter=0,
        created=now,
        used=now,
        pending_pre_key=PendingPreKey(
            signed_pre_key_id=bundle.signed_pre_key_id,
            base_key=with_key_type(base.public),
            pre_key_id=bundle.pre_key_id if one_time is not None else None,
        ),
    )
    add_chain(entry, with_key_type(ratchet.public), ChainType.SENDING, chain_key)
    if record is None:
        record = SessionRecord()
    record.close_open(now)
    record.put(entry)
    return record


def accept_session(
    header: PreKeyWhisper,
    our_identity: KeyPair,
    signed_pre_key: KeyPair,
    one_time_pre_key: KeyPair | None,
    now: int,
) -> SessionEntry:
    """The responder's new session for a pkmsg (libsignal-node's initIncoming).

    It has no chains yet: the first message's ratchet key creates them when it is decrypted.
    """
    try:
        secret = (
            X3DH_PREFIX
            + signed_pre_key.dh(header.identity_key)
            + our_identity.dh(header.base_key)
            + signed_pre_key.dh(header.base_key)
        )
        if one_time_pre_key is not None:
            secret += one_time_pre_key.dh(header.base_key)
    except ValueError as exc:
        raise InvalidMessage("unusable public key in the pkmsg") from exc
    return SessionEntry(
        registration_id=header.registration_id,
        base_key=header.base_key,
        base_key_type=BaseKeyType.THEIRS,
        remote_identity=header.identity_key,
        root_key=_master_key(secret),
        ratchet_key=signed_pre_key,
        last_remote_ratchet=header.base_key,
        previous_counter=0,
        created=now,
        used=now,
    )


def _master_key(secret: bytes) -> bytes:
    # libsignal-node derives three chunks and keeps only the first, as the root key.
    return hkdf(secret, 32, ZERO_SALT, X3DH_INFO)
