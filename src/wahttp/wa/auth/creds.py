"""A linked device's credentials, shaped like Baileys' AuthenticationCreds so both read each other.

`to_json`/`from_json` give exactly the object Baileys keeps in creds.json (before BufferJSON).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from typing import Any

from wahttp.wa import crypto
from wahttp.wa.auth.bufferjson import b64decode, b64encode
from wahttp.wa.crypto import KeyPair
from wahttp.wa.jid import Jid
from wahttp.wa.proto import adv_pb2


@dataclass(slots=True)
class SignedPreKey:
    key_pair: KeyPair
    signature: bytes
    key_id: int

    @classmethod
    def generate(cls, identity: KeyPair, key_id: int) -> SignedPreKey:
        pair = KeyPair.generate()
        return cls(pair, identity.sign(crypto.with_key_type(pair.public)), key_id)


@dataclass(slots=True)
class Me:
    """Who this device is once linked: its PN device JID, LID device JID and push name."""

    id: str
    lid: str | None = None
    name: str | None = None

    @property
    def jid(self) -> Jid:
        return Jid.parse(self.id)


@dataclass(slots=True)
class SignalIdentity:
    name: str
    device_id: int
    key: bytes  # 33-byte libsignal form


# Ranges of creds.json numbers: key ids travel as 3 bytes, registration ids as 4, a device is
# one byte of an AD-JID; a counter must stay a safe JavaScript integer for Baileys.
MAX_KEY_ID = 0xFFFFFF
MAX_UINT32 = 0xFFFFFFFF
MAX_DEVICE = 0xFF
MAX_SAFE_INT = 2**53 - 1

# creds.json keys this class models; anything else is kept verbatim in `extra`.
_KNOWN = {
    "noiseKey", "pairingEphemeralKeyPair", "signedIdentityKey", "signedPreKey", "registrationId",
    "advSecretKey", "processedHistoryMessages", "nextPreKeyId", "firstUnuploadedPreKeyId",
    "accountSyncCounter", "accountSettings", "registered", "pairingCode", "me", "account",
    "signalIdentities", "platform", "routingInfo", "lastPropHash",
}  # fmt: skip


@dataclass(slots=True)
class Creds:
    noise_key: KeyPair
    pairing_ephemeral_key: KeyPair
    signed_identity_key: KeyPair
    signed_pre_key: SignedPreKey
    registration_id: int
    adv_secret_key: str  # base64, as Baileys keeps it
    next_pre_key_id: int = 1
    first_unuploaded_pre_key_id: int = 1
    account_sync_counter: int = 0
    registered: bool = False
    pairing_code: str | None = None
    me: Me | None = None
    account: adv_pb2.ADVSignedDeviceIdentity | None = None
    signal_identities: list[SignalIdentity] = field(default_factory=list)
    platform: str | None = None
    routing_info: bytes | None = None
    last_prop_hash: str | None = None
    processed_history_messages: list[Any] = field(default_factory=list)
    account_settings: dict[str, Any] = field(default_factory=lambda: {"unarchiveChats": False})
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_linked(self) -> bool:
        return self.me is not None and self.account is not None

    def to_json(self) -> dict[str, Any]:
        """The creds.json object (bytes still as bytes; BufferJSON wraps them)."""
        out: dict[str, Any] = dict(self.extra)
        out.update(
            noiseKey=_pair_json(self.noise_key),
            pairingEphemeralKeyPair=_pair_json(self.pairing_ephemeral_key),
            signedIdentityKey=_pair_json(self.signed_identity_key),
            signedPreKey={
                "keyPair": _pair_json(self.signed_pre_key.key_pair),
                "signature": self.signed_pre_key.signature,
                "keyId": self.signed_pre_key.key_id,
            },
            registrationId=self.registration_id,
            advSecretKey=self.adv_secret_key,
            processedHistoryMessages=self.processed_history_messages,
            nextPreKeyId=self.next_pre_key_id,
            firstUnuploadedPreKeyId=self.first_unuploaded_pre_key_id,
            accountSyncCounter=self.account_sync_counter,
            accountSettings=self.account_settings,
            registered=self.registered,
        )
        _put(out, "pairingCode", self.pairing_code)
        _put(out, "platform", self.platform)
        _put(out, "routingInfo", self.routing_info)
        _put(out, "lastPropHash", self.last_prop_hash)
        if self.me is not None:
            me: dict[str, Any] = {"id": self.me.id}
            _put(me, "lid", self.me.lid)
            _put(me, "name", self.me.name)
            out["me"] = me
        if self.account is not None:
            out["account"] = _account_json(self.account)
        if self.signal_identities:
            out["signalIdentities"] = [
                {"identifier": {"name": s.name, "deviceId": s.device_id}, "identifierKey": s.key}
                for s in self.signal_identities
            ]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Creds:
        """Read a creds.json object (BufferJSON revived); bad data: Key/Value/TypeError."""
        try:
            return cls._from_json(data)
        except AttributeError as exc:  # a nested value of the wrong type, e.g. "account": true
            raise TypeError(f"malformed creds: {exc}") from exc

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> Creds:
        spk = data["signedPreKey"]
        me = data.get("me")
        return cls(
            noise_key=_pair_from(data["noiseKey"]),
            pairing_ephemeral_key=_pair_from(data["pairingEphemeralKeyPair"]),
            signed_identity_key=_pair_from(data["signedIdentityKey"]),
            signed_pre_key=SignedPreKey(
                _pair_from(spk["keyPair"]),
                _bytes(spk["signature"]),
                _int(spk["keyId"], MAX_KEY_ID),
            ),
            registration_id=_int(data["registrationId"], MAX_UINT32),
            adv_secret_key=str(data["advSecretKey"]),
            next_pre_key_id=_int(data.get("nextPreKeyId", 1), MAX_KEY_ID + 1, 1),
            first_unuploaded_pre_key_id=_int(
                data.get("firstUnuploadedPreKeyId", 1), MAX_KEY_ID + 1, 1
            ),
            account_sync_counter=_int(data.get("accountSyncCounter", 0), MAX_SAFE_INT),
            registered=bool(data.get("registered", False)),
            pairing_code=data.get("pairingCode"),
            me=Me(str(me["id"]), me.get("lid"), me.get("name")) if me else None,
            account=_account_from(data["account"]) if data.get("account") else None,
            signal_identities=[
                SignalIdentity(
                    str(s["identifier"]["name"]),
                    _int(s["identifier"].get("deviceId", 0), MAX_DEVICE),
                    _bytes(s["identifierKey"]),
                )
                for s in data.get("signalIdentities") or []
            ],
            platform=data.get("platform"),
            routing_info=_bytes(data["routingInfo"]) if data.get("routingInfo") else None,
            last_prop_hash=data.get("lastPropHash"),
            processed_history_messages=list(data.get("processedHistoryMessages") or []),
            account_settings=dict(data.get("accountSettings") or {"unarchiveChats": False}),
            extra={k: v for k, v in data.items() if k not in _KNOWN},
        )


def new_creds() -> Creds:
    """Fresh credentials for a device that is not linked yet (as Baileys' initAuthCreds)."""
    identity = KeyPair.generate()
    return Creds(
        noise_key=KeyPair.generate(),
        pairing_ephemeral_key=KeyPair.generate(),
        signed_identity_key=identity,
        signed_pre_key=SignedPreKey.generate(identity, 1),
        registration_id=secrets.randbelow(16380) + 1,
        adv_secret_key=b64encode(os.urandom(32)),
    )


def _put(out: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        out[key] = value


def _pair_json(pair: KeyPair) -> dict[str, bytes]:
    return {"private": pair.private, "public": pair.public}


def _pair_from(data: dict[str, Any]) -> KeyPair:
    pair = KeyPair.from_private(_bytes(data["private"]))
    if pair.public != crypto.strip_key_type(_bytes(data["public"])):
        raise ValueError("key pair: public key does not match the private key")
    return pair


def _int(value: object, high: int, low: int = 0) -> int:
    """A whole number in [low, high] as JSON gives it (an int, or a float with no fraction):
    TypeError for anything else (bools and numeric strings too), ValueError out of range (a
    number beyond the double range, JSON 1e400, reads as inf)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"not a whole number: {value!r}")
        number = int(value)
    else:
        number = value
    if not low <= number <= high:
        raise ValueError(f"out of range [{low}, {high}]: {number}")
    return number


def _bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return b64decode(value)
    raise TypeError(f"expected bytes or base64, got {type(value).__name__}")


_ACCOUNT_FIELDS = ("details", "accountSignatureKey", "accountSignature", "deviceSignature")


def _account_json(account: adv_pb2.ADVSignedDeviceIdentity) -> dict[str, str]:
    # Baileys stores the account as protobufjs toJSON: bytes as plain base64 strings.
    return {f: b64encode(getattr(account, f)) for f in _ACCOUNT_FIELDS if account.HasField(f)}


def _account_from(data: dict[str, Any]) -> adv_pb2.ADVSignedDeviceIdentity:
    account = adv_pb2.ADVSignedDeviceIdentity()
    for f in _ACCOUNT_FIELDS:
        if data.get(f) is not None:
            setattr(account, f, _bytes(data[f]))
    return account
