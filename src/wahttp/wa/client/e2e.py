"""End-to-end encryption glue: Signal sessions per device, loaded and saved through SignalStore.

Used by the client and by the simulator's phones alike. Every record change is saved before the
ciphertext that depends on it leaves, so a crash never desynchronises a session.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from wahttp.wa.auth.signal_store import SignalStore
from wahttp.wa.auth.store import AuthStore
from wahttp.wa.jid import LID, S_WHATSAPP_NET, Jid
from wahttp.wa.signal import (
    PreKeyBundle,
    SessionRecord,
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


async def addresses(ss: SignalStore, devices: Iterable[Jid]) -> dict[Jid, str]:
    """The session address of each device (as `SignalStore.address`), from one read of the
    PN -> LID mappings of all their users instead of one read per device."""
    devices = list(devices)
    pn_users = sorted({d.user for d in devices if d.server == S_WHATSAPP_NET})
    lids = await ss.store.get("lid-mapping", pn_users) if pn_users else {}
    found: dict[Jid, str] = {}
    for device in devices:
        lid = lids.get(device.user) if device.server == S_WHATSAPP_NET else None
        jid = Jid(lid, LID, device.device) if isinstance(lid, str) else device
        found[device] = jid.signal_address()
    return found


async def load_sessions(ss: SignalStore, addresses: Iterable[str]) -> dict[str, SessionRecord]:
    """The stored session records of these addresses (one read); absent ones are left out."""
    found = await ss.store.get("session", sorted(set(addresses)))
    return {a: SessionRecord.from_json(v) for a, v in found.items() if isinstance(v, dict)}


async def encrypt_many(
    ss: SignalStore,
    records: Mapping[str, SessionRecord],
    items: Sequence[tuple[str, bytes]],
) -> list[tuple[EncType, bytes]]:
    """Encrypt each (address, plaintext) with the loaded `records`, then save every changed
    record in one atomic write before any ciphertext is returned (so before it can leave).
    An address without an open session raises NoSession and nothing is saved."""
    out: list[tuple[EncType, bytes]] = []
    changed: dict[str, Any] = {}
    for address, plaintext in items:
        record = records.get(address)
        if record is None or not has_open_session(record):
            raise NoSession(f"no session with {address}")
        out.append(encrypt(record, ss.identity_key(), ss.creds.registration_id, plaintext))
        changed[address] = record
    if changed:
        await ss.store.set({"session": {a: r.to_json() for a, r in changed.items()}})
    return out


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


async def decrypt_from(
    ss: SignalStore, sender: Jid, kind: str, data: bytes, address: str | None = None
) -> Decrypted:
    """Decrypt without saving (see Decrypted); `address` spares the lookup when known."""
    address = address or await ss.address(sender)
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
