"""A simulated primary device (phone): it owns an account's identity and signs linked companions."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from wahttp.wa import crypto
from wahttp.wa.crypto import KeyPair
from wahttp.wa.jid import Jid
from wahttp.wa.proto import adv_pb2

ADV_ACCOUNT_SIG_PREFIX = b"\x06\x00"
ADV_DEVICE_SIG_PREFIX = b"\x06\x01"


@dataclass
class Phone:
    number: str
    lid_user: str
    push_name: str
    identity: KeyPair = field(default_factory=KeyPair.generate)
    registration_id: int = field(default_factory=lambda: secrets.randbelow(16380) + 1)
    raw_id: int = field(default_factory=lambda: secrets.randbits(32))
    next_key_index: int = 1

    @property
    def jid(self) -> Jid:
        return Jid(self.number, "s.whatsapp.net")

    @property
    def lid(self) -> Jid:
        return Jid(self.lid_user, "lid")

    def sign_companion(self, companion_identity: bytes, adv_secret: bytes) -> tuple[bytes, int]:
        """The ADVSignedDeviceIdentityHMAC for a companion, and the key index it was given."""
        key_index = self.next_key_index
        self.next_key_index += 1
        details = adv_pb2.ADVDeviceIdentity(
            rawId=self.raw_id,
            timestamp=int(time.time()),
            keyIndex=key_index,
            accountType=adv_pb2.E2EE,
            deviceType=adv_pb2.E2EE,
        ).SerializeToString()
        signature = self.identity.sign(ADV_ACCOUNT_SIG_PREFIX + details + companion_identity)
        signed = adv_pb2.ADVSignedDeviceIdentity(
            details=details,
            accountSignatureKey=self.identity.public,
            accountSignature=signature,
        ).SerializeToString()
        wrapper = adv_pb2.ADVSignedDeviceIdentityHMAC(
            details=signed, hmac=crypto.hmac_sha256(adv_secret, signed), accountType=adv_pb2.E2EE
        )
        return wrapper.SerializeToString(), key_index

    def check_device_signature(self, companion_identity: bytes, signed_reply: bytes) -> bool:
        """Verify the companion's signature over the identity we gave it (pair-device-sign)."""
        try:
            reply = adv_pb2.ADVSignedDeviceIdentity.FromString(signed_reply)
        except Exception:  # protobuf's DecodeError
            return False
        message = ADV_DEVICE_SIG_PREFIX + reply.details + companion_identity + self.identity.public
        return crypto.verify(companion_identity, message, reply.deviceSignature)
