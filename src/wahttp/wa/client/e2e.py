"""End-to-end encryption glue: Signal sessions per device, loaded and saved through SignalStore.

Used by the client and by the simulator's phones alike. Every record change is saved before the
ciphertext that depends on it leaves, so a crash never desynchronises a session.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from wahttp.wa.auth.signal_store import SignalStore
from wahttp.wa.auth.store import AuthStore
from wahttp.wa.jid import Jid
from wahttp.wa.signal import (
    PreKeyBundle,
    build_session,
    decrypt_message,
    decrypt_prekey_message,
    encrypt,
    has_open_session,
    parse_prekey_message,
)
from wahttp.wa.signal.errors import NoSession

log = logging.getLogger(__name__)
EncType = Literal["pkmsg", "msg"]


async def encrypt_for(ss: SignalStore, device: Jid, plaintext: bytes) -> tuple[EncType, bytes]:
    address = await ss.address(device)
    record = await ss.load_session(address)
    if record is None or not has_open_session(record):
        raise NoSession(f"no session with {address}")
    kind, ciphertext = encrypt(record, ss.identity_key(), ss.creds.registration_id, plaintext)
    await ss.save_session(address, record)
    return kind, ciphertext


async def start_session(ss: SignalStore, device: Jid, bundle: PreKeyBundle) -> None:
    """X3DH from a fetched bundle; a changed identity replaces the old session."""
    address = await ss.address(device)
    known = await ss.identity(address)
    if known is not None and known[-32:] != bundle.identity_key[-32:]:
        log.info("identity of %s changed: starting a new session", address)
    record = await ss.load_session(address)
    record = build_session(record, ss.identity_key(), bundle)
    await ss.save_session(address, record, identity=bundle.identity_key)


@dataclass
class Decrypted:
    """A decrypted payload whose session change is not saved yet: call `commit()` once the
    message is safely handed over, so a crash in between makes the server redeliver a message
    we can still decrypt, instead of one our advanced ratchet would refuse as a duplicate."""

    plaintext: bytes
    changes: dict[str, dict[str, Any]]
    store: AuthStore

    async def commit(self) -> None:
        await self.store.set(self.changes)  # one atomic write: session, identity, used pre-key


async def decrypt_from(ss: SignalStore, sender: Jid, kind: str, data: bytes) -> Decrypted:
    address = await ss.address(sender)
    record = await ss.load_session(address)
    if kind == "pkmsg":
        header = parse_prekey_message(data)
        one_time = await ss.pre_key(header.pre_key_id) if header.pre_key_id is not None else None
        record, plaintext, used = decrypt_prekey_message(
            record,
            ss.identity_key(),
            ss.creds.registration_id,
            ss.signed_pre_key(header.signed_pre_key_id),
            one_time,
            data,
        )
        changes: dict[str, dict[str, Any]] = {
            "session": {address: record.to_json()},
            "identity-key": {address: header.identity_key},
        }
        if used is not None:
            changes["pre-key"] = {str(used): None}
        return Decrypted(plaintext, changes, ss.store)
    if kind != "msg":
        raise NoSession(f"unsupported enc type {kind!r}")
    if record is None:
        raise NoSession(f"no session with {address}")
    plaintext = decrypt_message(record, ss.identity_key(), data)
    return Decrypted(plaintext, {"session": {address: record.to_json()}}, ss.store)
