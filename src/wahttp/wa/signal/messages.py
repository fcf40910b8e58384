"""The two 1:1 envelopes on the wire: WhisperMessage ("msg") and PreKeyWhisperMessage ("pkmsg").

msg   = version byte 0x33 + WhisperMessage protobuf + 8-byte MAC
pkmsg = version byte 0x33 + PreKeyWhisperMessage protobuf (its `message` is a whole msg)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from wahttp.wa.crypto import strip_key_type, with_key_type
from wahttp.wa.proto import signal_pb2
from wahttp.wa.signal.errors import InvalidMessage, SignalError

VERSION = 3
VERSION_BYTE = bytes([VERSION << 4 | VERSION])
MAC_SIZE = 8


def public_key(key: bytes, error: type[SignalError] = InvalidMessage) -> bytes:
    """A Curve25519 public key in its 33-byte form; `error` when it is not one."""
    try:
        return with_key_type(strip_key_type(key))
    except ValueError as exc:
        raise error("malformed public key") from exc


def check_version(version: int) -> None:
    # libsignal-node reads the byte as (current << 4 | minimum) and accepts 3 only.
    if (version & 0xF) > VERSION or (version >> 4) < VERSION:
        raise InvalidMessage(f"unsupported message version {version:#04x}")


@dataclass(frozen=True, slots=True)
class WhisperEnvelope:
    """A parsed WhisperMessage; `signed` is what the MAC covers after the two identities."""

    ratchet_key: bytes = field(repr=False)
    counter: int
    previous_counter: int
    ciphertext: bytes = field(repr=False)
    signed: bytes = field(repr=False)
    mac: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class PreKeyWhisper:
    """A parsed PreKeyWhisperMessage: which of our pre-keys it needs, and the inner msg."""

    registration_id: int
    pre_key_id: int | None
    signed_pre_key_id: int
    base_key: bytes = field(repr=False)
    identity_key: bytes = field(repr=False)
    message: bytes = field(repr=False)


def parse_whisper(data: bytes) -> WhisperEnvelope:
    if len(data) <= 1 + MAC_SIZE:
        raise InvalidMessage("message too short")
    check_version(data[0])
    signed, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
    msg = signal_pb2.WhisperMessage()
    try:
        msg.ParseFromString(signed[1:])
    except DecodeError as exc:
        raise InvalidMessage("malformed WhisperMessage") from exc
    if not msg.HasField("ephemeralKey"):
        raise InvalidMessage("WhisperMessage without a ratchet key")
    return WhisperEnvelope(
        ratchet_key=public_key(msg.ephemeralKey),
        counter=msg.counter,
        previous_counter=msg.previousCounter,
        ciphertext=msg.ciphertext,
        signed=signed,
        mac=mac,
    )


def encode_whisper(ratchet_key: bytes, counter: int, previous_counter: int, ct: bytes) -> bytes:
    """Version byte + WhisperMessage protobuf, the part the MAC covers (the MAC goes after).

    A chain never sent on has counter -1; libsignal-node writes that previous counter as the
    uint32 0xFFFFFFFF, and so do we."""
    msg = signal_pb2.WhisperMessage(
        ephemeralKey=ratchet_key,
        counter=counter,
        previousCounter=previous_counter & 0xFFFFFFFF,
        ciphertext=ct,
    )
    return VERSION_BYTE + msg.SerializeToString()


def parse_prekey_message(data: bytes) -> PreKeyWhisper:
    """Read a pkmsg's header, so the caller can load the pre-keys it names before decrypting."""
    if len(data) < 2:
        raise InvalidMessage("message too short")
    check_version(data[0])
    msg = signal_pb2.PreKeyWhisperMessage()
    try:
        msg.ParseFromString(data[1:])
    except DecodeError as exc:
        raise InvalidMessage("malformed PreKeyWhisperMessage") from exc
    for name in ("baseKey", "identityKey", "message"):
        if not msg.HasField(name):
            raise InvalidMessage(f"PreKeyWhisperMessage without {name}")
    return PreKeyWhisper(
        registration_id=msg.registrationId,
        # libsignal-node treats pre-key id 0 as no pre-key, when sending and when receiving.
        pre_key_id=msg.preKeyId or None,
        signed_pre_key_id=msg.signedPreKeyId,
        base_key=public_key(msg.baseKey),
        identity_key=public_key(msg.identityKey),
        message=msg.message,
    )


def encode_prekey_message(
    *,
    registration_id: int,
    pre_key_id: int | None,
    signed_pre_key_id: int,
    base_key: bytes,
    identity_key: bytes,
    message: bytes,
) -> bytes:
    msg = signal_pb2.PreKeyWhisperMessage(
        identityKey=identity_key,
        registrationId=registration_id,
        baseKey=base_key,
        signedPreKeyId=signed_pre_key_id,
        message=message,
    )
    if pre_key_id:
        msg.preKeyId = pre_key_id
    return VERSION_BYTE + msg.SerializeToString()
