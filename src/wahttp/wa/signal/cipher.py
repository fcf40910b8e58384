"""Encrypting and decrypting 1:1 messages with a SessionRecord, as libsignal-node's SessionCipher.

Every function changes the record it is given only when it succeeds, so a caller persists the
record after a success and simply drops it after a failure.
"""

from __future__ import annotations

import hmac
from typing import Literal

from wahttp.wa.crypto import KeyPair, with_key_type
from wahttp.wa.signal.builder import accept_session, now_ms
from wahttp.wa.signal.errors import (
    DuplicateMessage,
    InvalidKeyId,
    InvalidMessage,
    NoSession,
    SignalError,
)
from wahttp.wa.signal.messages import (
    WhisperEnvelope,
    encode_prekey_message,
    encode_whisper,
    parse_prekey_message,
    parse_whisper,
)
from wahttp.wa.signal.ratchet import (
    cbc_decrypt,
    cbc_encrypt,
    fill_message_keys,
    mac,
    message_keys,
    next_sending_key,
    step_ratchet,
)
from wahttp.wa.signal.record import BaseKeyType, ChainType, SessionEntry, SessionRecord

EncType = Literal["pkmsg", "msg"]


def encrypt(
    record: SessionRecord, our_identity: KeyPair, our_registration_id: int, plaintext: bytes
) -> tuple[EncType, bytes]:
    """Encrypt with the open session: a pkmsg until the peer has answered, then msgs.

    Steps the sending chain of `record` in place; NoSession when no session is open.
    """
    entry = record.open_entry()
    if entry is None:
        raise NoSession("no open session")
    ratchet_public = with_key_type(entry.ratchet_key.public)
    chain = entry.chains.get(ratchet_public)
    if chain is None or chain.chain_type is not ChainType.SENDING:
        raise NoSession("the open session has no sending chain")
    cipher_key, mac_key, iv = message_keys(next_sending_key(chain))
    ciphertext = cbc_encrypt(cipher_key, iv, plaintext)
    signed = encode_whisper(ratchet_public, chain.counter, entry.previous_counter, ciphertext)
    our_public = with_key_type(our_identity.public)
    whisper = signed + mac(mac_key, our_public, entry.remote_identity, signed)
    record.prune()
    pending = entry.pending_pre_key
    if pending is None:
        return "msg", whisper
    pkmsg = encode_prekey_message(
        registration_id=our_registration_id,
        pre_key_id=pending.pre_key_id,
        signed_pre_key_id=pending.signed_pre_key_id,
        base_key=pending.base_key,
        identity_key=our_public,
        message=whisper,
    )
    return "pkmsg", pkmsg


def decrypt_message(
    record: SessionRecord,
    our_identity: KeyPair,
    data: bytes,
    *,
    ratchet_key: KeyPair | None = None,
    now: int | None = None,
) -> bytes:
    """Decrypt a msg with whichever session of `record` it belongs to, most recently used first.

    DuplicateMessage when its key was used already, InvalidMessage when it is malformed or no
    session accepts it, NoSession when the record is empty. `ratchet_key` replaces the fresh
    key pair a DH ratchet step needs (for known-answer tests); `now` is in ms.
    """
    envelope = parse_whisper(data)
    entries = record.entries_by_use()
    if not entries:
        raise NoSession("no sessions")
    our_public = with_key_type(our_identity.public)
    errors: list[SignalError] = []
    for entry in entries:
        work = entry.fork()
        try:
            plaintext = _decrypt_with(work, envelope, our_public, ratchet_key)
        except SignalError as exc:
            errors.append(exc)
            continue
        work.used = now_ms() if now is None else now
        record.put(work)
        record.prune()
        return plaintext
    duplicate = next((e for e in errors if isinstance(e, DuplicateMessage)), None)
    if duplicate is not None:
        raise duplicate
    raise InvalidMessage(f"no session could decrypt the message ({errors[0]})")


def decrypt_prekey_message(  # noqa: PLR0917 - positional like libsignal's inputs, by design
    record: SessionRecord | None,
    our_identity: KeyPair,
    our_registration_id: int,
    signed_pre_key: KeyPair | None,
    one_time_pre_key: KeyPair | None,
    data: bytes,
    *,
    ratchet_key: KeyPair | None = None,
    now: int | None = None,
) -> tuple[SessionRecord, bytes, int | None]:
    """Decrypt a pkmsg: accept the session it starts, or reuse it if it is known already.

    Returns (record, plaintext, id of the one-time pre-key used up, to be deleted, or None).
    `signed_pre_key` and `one_time_pre_key` are ours with the ids that parse_prekey_message
    names; they may be None when the session exists (InvalidKeyId when they are needed). The
    record is changed in place on success only; a new one is made when `record` is None.
    `our_registration_id` is not needed to decrypt (libsignal ignores it too).
    """
    del our_registration_id
    header = parse_prekey_message(data)
    envelope = parse_whisper(header.message)
    our_public = with_key_type(our_identity.public)
    record = SessionRecord() if record is None else record
    known = record.entry(header.base_key)
    if known is not None:
        # A repeated pkmsg: the peer has not seen our answer yet, the session stands.
        if known.base_key_type is BaseKeyType.OURS:
            raise InvalidMessage("pkmsg carries our own base key")
        work = known.fork()
        plaintext = _decrypt_with(work, envelope, our_public, ratchet_key)
        record.put(work)
        record.prune()
        return record, plaintext, None
    if signed_pre_key is None:
        raise InvalidKeyId(f"missing signed pre-key {header.signed_pre_key_id}")
    if header.pre_key_id is not None and one_time_pre_key is None:
        raise InvalidKeyId(f"missing one-time pre-key {header.pre_key_id}")
    one_time = one_time_pre_key if header.pre_key_id is not None else None
    now = now_ms() if now is None else now
    entry = accept_session(header, our_identity, signed_pre_key, one_time, now)
    plaintext = _decrypt_with(entry, envelope, our_public, ratchet_key)
    current = record.open_entry()
    if current is not None and current.pending_pre_key is not None:
        # Both sides started a session at once. The peer (libsignal-node) switches to the
        # session our pkmsg starts and encrypts only with its open session, so ours stays
        # open; theirs is kept closed to read what they sent before seeing our pkmsg.
        # Switching here would have us send on a session the peer has closed: libsignal-node
        # tries its open one first and that failed attempt corrupts it ("Bad MAC").
        entry.closed = now
    else:
        record.close_open(now)
    record.put(entry)
    record.prune()
    return record, plaintext, header.pre_key_id if one_time is not None else None


def has_open_session(record: SessionRecord | None) -> bool:
    """True when the record has an open session to encrypt with (libsignal's haveOpenSession)."""
    entry = record.open_entry() if record is not None else None
    return entry is not None and entry.registration_id is not None


def remote_identity(record: SessionRecord | None) -> bytes | None:
    """The peer's identity key (33 bytes) in the open session, for the caller to pin."""
    entry = record.open_entry() if record is not None else None
    return entry.remote_identity if entry is not None else None


def _decrypt_with(
    entry: SessionEntry, envelope: WhisperEnvelope, our_public: bytes, ratchet_key: KeyPair | None
) -> bytes:
    """Decrypt with one session, changing `entry` (a fork, or a new entry) as it goes."""
    chain = entry.chains.get(envelope.ratchet_key)
    if chain is None:
        try:
            step_ratchet(
                entry,
                envelope.ratchet_key,
                envelope.previous_counter,
                ratchet_key or KeyPair.generate(),
            )
        except ValueError as exc:
            raise InvalidMessage("unusable ratchet key") from exc
        chain = entry.chains[envelope.ratchet_key]
    elif chain.chain_type is ChainType.SENDING:
        raise InvalidMessage("message on our own sending chain")
    else:
        chain = chain.copy()
        entry.chains[envelope.ratchet_key] = chain
    fill_message_keys(chain, envelope.counter)
    seed = chain.message_keys.pop(envelope.counter, None)
    if seed is None:
        raise DuplicateMessage(f"message key {envelope.counter} was used already")
    cipher_key, mac_key, iv = message_keys(seed)
    expected = mac(mac_key, entry.remote_identity, our_public, envelope.signed)
    if not hmac.compare_digest(expected, envelope.mac):
        raise InvalidMessage("bad MAC")
    plaintext = cbc_decrypt(cipher_key, iv, envelope.ciphertext)
    entry.pending_pre_key = None
    return plaintext
