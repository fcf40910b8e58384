"""Signal state in an AuthStore, laid out exactly as Baileys 7 lays it out.

Sessions live under their libsignal address (`user[_domain].device`), resolved to the LID
address when a PN->LID mapping is known; identities under `identity-key`; mappings under
`lid-mapping` (`<pn user>` -> lid user and `<lid user>_reverse` -> pn user); device lists under
`device-list` (`<user>` -> ["0", "3", ...]). An auth folder written by either side works in both.
"""

from __future__ import annotations

from typing import Any

from wahttp.wa.auth.creds import Creds
from wahttp.wa.auth.store import AuthStore
from wahttp.wa.crypto import KeyPair
from wahttp.wa.jid import LID, Jid
from wahttp.wa.signal import SessionRecord


class SignalStore:
    """Typed access to one account's Signal state; every write is awaited (durable on return)."""

    def __init__(self, store: AuthStore, creds: Creds) -> None:
        self.store = store
        self.creds = creds

    # -- addressing ----------------------------------------------------------------------------
    async def address(self, jid: Jid) -> str:
        """The session address for a device JID: its LID form when the mapping is known."""
        if not jid.is_lid() and jid.server in ("s.whatsapp.net",):
            lid_user = await self.lid_for_pn(jid.user)
            if lid_user is not None:
                jid = Jid(lid_user, LID, jid.device)
        return jid.signal_address()

    async def lid_for_pn(self, pn_user: str) -> str | None:
        found = await self.store.get("lid-mapping", [pn_user])
        value = found.get(pn_user)
        return value if isinstance(value, str) else None

    async def pn_for_lid(self, lid_user: str) -> str | None:
        key = f"{lid_user}_reverse"
        found = await self.store.get("lid-mapping", [key])
        value = found.get(key)
        return value if isinstance(value, str) else None

    async def store_lid_mapping(self, lid_user: str, pn_user: str) -> bool:
        """Record PN <-> LID; returns True when it was new. Existing sessions move with it."""
        if await self.lid_for_pn(pn_user) == lid_user:
            return False
        await self.store.set({"lid-mapping": {pn_user: lid_user, f"{lid_user}_reverse": pn_user}})
        return True

    async def migrate_sessions(self, pn_user: str, lid_user: str, devices: list[int]) -> None:
        """Move sessions kept under PN addresses to the LID addresses (as Baileys migrates)."""
        pn_addrs = {d: Jid(pn_user, "s.whatsapp.net", d).signal_address() for d in devices}
        found = await self.store.get("session", list(pn_addrs.values()))
        if not found:
            return
        changes: dict[str, Any] = {}
        for device, addr in pn_addrs.items():
            if addr in found:
                changes[Jid(lid_user, LID, device).signal_address()] = found[addr]
                changes[addr] = None
        await self.store.set({"session": changes})

    # -- sessions and identities ---------------------------------------------------------------
    async def load_session(self, address: str) -> SessionRecord | None:
        found = await self.store.get("session", [address])
        data = found.get(address)
        return SessionRecord.from_json(data) if isinstance(data, dict) else None

    async def save_session(
        self, address: str, record: SessionRecord, *, identity: bytes | None = None
    ) -> None:
        """Save a session (and its peer identity) in one atomic write."""
        changes: dict[str, dict[str, Any]] = {"session": {address: record.to_json()}}
        if identity is not None:
            changes["identity-key"] = {address: identity}
        await self.store.set(changes)

    async def has_sessions(self, addresses: list[str]) -> set[str]:
        found = await self.store.get("session", addresses)
        return set(found)

    async def identity(self, address: str) -> bytes | None:
        found = await self.store.get("identity-key", [address])
        value = found.get(address)
        return value if isinstance(value, bytes) else None

    async def forget_identity(self, address: str) -> None:
        await self.store.set({"session": {address: None}, "identity-key": {address: None}})

    # -- our keys ------------------------------------------------------------------------------
    def identity_key(self) -> KeyPair:
        return self.creds.signed_identity_key

    def signed_pre_key(self, key_id: int) -> KeyPair:
        # Only the current signed pre-key is kept; Baileys answers with it whatever the id.
        return self.creds.signed_pre_key.key_pair

    async def pre_key(self, key_id: int) -> KeyPair | None:
        found = await self.store.get("pre-key", [str(key_id)])
        value = found.get(str(key_id))
        if not isinstance(value, dict) or not isinstance(value.get("private"), bytes):
            return None
        return KeyPair.from_private(value["private"])

    # -- device lists --------------------------------------------------------------------------
    async def device_lists(self, users: list[str]) -> dict[str, list[int]]:
        found = await self.store.get("device-list", users)
        return {u: [int(d) for d in v] for u, v in found.items() if isinstance(v, list)}

    async def save_device_lists(self, lists: dict[str, list[int]]) -> None:
        if lists:
            data: dict[str, Any] = {u: [str(d) for d in devs] for u, devs in lists.items()}
            await self.store.set({"device-list": data})
