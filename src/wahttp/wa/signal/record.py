"""Session records as libsignal-node keeps them, with its `serialize()` JSON shape both ways.

A record holds the sessions with one peer device, keyed by base key; at most one is open. The
JSON is what Baileys writes to `session-*.json`, key for key and in the same order, so an auth
folder works with either implementation. Public keys are stored in their 33-byte form.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from wahttp.wa.crypto import KEY_SIZE, KeyPair, strip_key_type, with_key_type
from wahttp.wa.signal.errors import InvalidRecord

RECORD_VERSION = "v1"
# libsignal-node keeps this many sessions per record (the open one included) before it drops
# the oldest closed ones.
CLOSED_SESSIONS_MAX = 40
OPEN = -1  # indexInfo.closed of an open session; a closed one holds its closing time in ms


class ChainType(IntEnum):
    SENDING = 1
    RECEIVING = 2


class BaseKeyType(IntEnum):
    """Whose base key names the session: ours when we initiated it, theirs when they did."""

    OURS = 1
    THEIRS = 2


@dataclass(slots=True)
class Chain:
    """One symmetric ratchet chain; `key` is None once libsignal has closed it."""

    chain_type: ChainType
    counter: int
    key: bytes | None = field(repr=False)
    # Keys of skipped messages by counter, kept in ascending order.
    message_keys: dict[int, bytes] = field(default_factory=dict, repr=False)

    def copy(self) -> Chain:
        return Chain(self.chain_type, self.counter, self.key, dict(self.message_keys))


@dataclass(slots=True)
class PendingPreKey:
    """What an initiator repeats in every message until the peer answers."""

    signed_pre_key_id: int
    base_key: bytes = field(repr=False)
    pre_key_id: int | None = None


@dataclass(slots=True)
class SessionEntry:
    """One session: libsignal's currentRatchet, indexInfo, chains and pendingPreKey."""

    registration_id: int | None
    base_key: bytes = field(repr=False)
    base_key_type: BaseKeyType
    remote_identity: bytes = field(repr=False)
    root_key: bytes = field(repr=False)
    ratchet_key: KeyPair = field(repr=False)  # our current ratchet (ephemeral) key pair
    last_remote_ratchet: bytes = field(repr=False)
    previous_counter: int
    created: int
    used: int
    closed: int = OPEN
    # Chains by the 33-byte ratchet public key they belong to, in creation order.
    chains: dict[bytes, Chain] = field(default_factory=dict, repr=False)
    pending_pre_key: PendingPreKey | None = None

    @property
    def is_open(self) -> bool:
        return self.closed == OPEN

    def fork(self) -> SessionEntry:
        """A copy to work on: scalar fields and the chain table are its own, chains shared.

        Whoever changes a chain of the fork replaces it with `chain.copy()` first, so a failed
        decryption leaves the original untouched at the cost of copying only what it touched.
        """
        return dataclasses.replace(self, chains=dict(self.chains))


class SessionRecord:
    """All sessions with one peer device, in libsignal-node's order (insertion order)."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[bytes, SessionEntry] = {}

    def __repr__(self) -> str:
        state = "open" if self.open_entry() is not None else "closed"
        return f"SessionRecord({len(self._entries)} sessions, {state})"

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[SessionEntry]:
        return iter(self._entries.values())

    def entry(self, base_key: bytes) -> SessionEntry | None:
        return self._entries.get(base_key)

    def open_entry(self) -> SessionEntry | None:
        return next((e for e in self._entries.values() if e.is_open), None)

    def entries_by_use(self) -> list[SessionEntry]:
        """Most recently used first; ties keep record order (libsignal's getSessions)."""
        return sorted(self._entries.values(), key=lambda e: e.used, reverse=True)

    def put(self, entry: SessionEntry) -> None:
        """Add or replace the session with this entry's base key (a replacement keeps its place)."""
        self._entries[entry.base_key] = entry

    def close_open(self, now: int) -> None:
        entry = self.open_entry()
        if entry is not None:
            entry.closed = now

    def prune(self) -> None:
        """Drop the oldest closed sessions beyond CLOSED_SESSIONS_MAX, as libsignal does on save."""
        while len(self._entries) > CLOSED_SESSIONS_MAX:
            closed = [e for e in self._entries.values() if not e.is_open]
            if not closed:
                raise InvalidRecord("more open sessions than a record can hold")
            # min() keeps the first of equal timestamps, like libsignal's strict `<` scan.
            del self._entries[min(closed, key=lambda e: e.closed).base_key]

    def to_json(self) -> dict[str, Any]:
        """libsignal-node's SessionRecord.serialize(), key order included."""
        sessions = {_b64(key): _entry_to_json(entry) for key, entry in self._entries.items()}
        return {"_sessions": sessions, "version": RECORD_VERSION}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SessionRecord:
        """Read libsignal-node's serialised form; InvalidRecord when it has another shape."""
        try:
            return cls._from_json(data)
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
            raise InvalidRecord(f"malformed session record: {type(exc).__name__}") from exc

    @classmethod
    def _from_json(cls, data: Mapping[str, Any]) -> SessionRecord:
        sessions: Mapping[str, Any] = data.get("_sessions") or {}
        version = data.get("version")
        if version != RECORD_VERSION:
            if version is not None:
                raise InvalidRecord(f"unknown session record version {version!r}")
            # libsignal's v1 migration: pre-v1 records kept one registrationId for all sessions.
            legacy = data.get("registrationId")
            if legacy:
                sessions = {
                    k: v if v.get("registrationId") else {**v, "registrationId": legacy}
                    for k, v in sessions.items()
                }
        record = cls()
        for item in sessions.values():
            record.put(_entry_from_json(item))
        return record


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise TypeError("base64 string expected")
    return base64.b64decode(text)


def _public(text: Any) -> bytes:
    return with_key_type(strip_key_type(_unb64(text)))


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("number expected")
    if value != int(value):
        raise ValueError("integer expected")
    return int(value)


def _entry_to_json(entry: SessionEntry) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if entry.registration_id is not None:
        data["registrationId"] = entry.registration_id
    data["currentRatchet"] = {
        "ephemeralKeyPair": {
            "pubKey": _b64(with_key_type(entry.ratchet_key.public)),
            "privKey": _b64(entry.ratchet_key.private),
        },
        "lastRemoteEphemeralKey": _b64(entry.last_remote_ratchet),
        "previousCounter": entry.previous_counter,
        "rootKey": _b64(entry.root_key),
    }
    data["indexInfo"] = {
        "baseKey": _b64(entry.base_key),
        "baseKeyType": int(entry.base_key_type),
        "closed": entry.closed,
        "used": entry.used,
        "created": entry.created,
        "remoteIdentityKey": _b64(entry.remote_identity),
    }
    data["_chains"] = {_b64(key): _chain_to_json(chain) for key, chain in entry.chains.items()}
    pending = entry.pending_pre_key
    if pending is not None:
        data["pendingPreKey"] = {
            "signedKeyId": pending.signed_pre_key_id,
            "baseKey": _b64(pending.base_key),
        }
        if pending.pre_key_id is not None:
            data["pendingPreKey"]["preKeyId"] = pending.pre_key_id
    return data


def _chain_to_json(chain: Chain) -> dict[str, Any]:
    chain_key: dict[str, Any] = {"counter": chain.counter}
    if chain.key is not None:  # a closed chain has no key at all in libsignal's JSON
        chain_key["key"] = _b64(chain.key)
    # JavaScript lists integer-like keys in ascending order whatever the insertion order.
    keys = {str(n): _b64(chain.message_keys[n]) for n in sorted(chain.message_keys)}
    return {"chainKey": chain_key, "chainType": int(chain.chain_type), "messageKeys": keys}


def _entry_from_json(data: Mapping[str, Any]) -> SessionEntry:
    ratchet = data["currentRatchet"]
    pair = ratchet["ephemeralKeyPair"]
    private = _unb64(pair["privKey"])
    if len(private) != KEY_SIZE:
        raise ValueError("a ratchet private key has 32 bytes")
    info = data["indexInfo"]
    registration_id = data.get("registrationId")
    entry = SessionEntry(
        registration_id=None if registration_id is None else _int(registration_id),
        base_key=_public(info["baseKey"]),
        base_key_type=BaseKeyType(_int(info["baseKeyType"])),
        remote_identity=_public(info["remoteIdentityKey"]),
        root_key=_unb64(ratchet["rootKey"]),
        ratchet_key=KeyPair(private=private, public=strip_key_type(_unb64(pair["pubKey"]))),
        last_remote_ratchet=_public(ratchet["lastRemoteEphemeralKey"]),
        previous_counter=_int(ratchet["previousCounter"]),
        created=_int(info.get("created") or 0),
        used=_int(info.get("used") or 0),
        closed=_int(info["closed"]),
        chains={_public(k): _chain_from_json(v) for k, v in data["_chains"].items()},
    )
    pending = data.get("pendingPreKey")
    if pending:
        pre_key_id = pending.get("preKeyId")
        entry.pending_pre_key = PendingPreKey(
            signed_pre_key_id=_int(pending["signedKeyId"]),
            base_key=_public(pending["baseKey"]),
            pre_key_id=None if pre_key_id is None else _int(pre_key_id),
        )
    return entry


def _chain_from_json(data: Mapping[str, Any]) -> Chain:
    chain_key = data["chainKey"]
    key = chain_key.get("key")
    message_keys = {int(n): _unb64(v) for n, v in data["messageKeys"].items()}
    return Chain(
        chain_type=ChainType(_int(data["chainType"])),
        counter=_int(chain_key["counter"]),
        key=None if key is None else _unb64(key),
        message_keys=dict(sorted(message_keys.items())),
    )
