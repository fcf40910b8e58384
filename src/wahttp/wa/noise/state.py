"""The symmetric state (h, ck, k, counter) of Noise_XX_25519_AESGCM_SHA256 as WhatsApp runs it."""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from wahttp.wa import crypto
from wahttp.wa.errors import HandshakeError

# Exactly 32 bytes, so Noise uses the name itself (not its hash) as the initial h, ck and k.
PROTOCOL_NAME = b"Noise_XX_25519_AESGCM_SHA256\0\0\0\0"
HASH_SIZE = 32
TAG_SIZE = 16
_MAX_COUNTER = 0xFFFFFFFF
_IV = struct.Struct(">8xI")


def nonce(counter: int) -> bytes:
    """The 12-byte AES-GCM IV WhatsApp uses: 8 zero bytes then the 32-bit big-endian counter."""
    return _IV.pack(counter)


class SymmetricState:
    """Running hash, chaining key and cipher key of one handshake; never shared between connections.

    WhatsApp keeps ONE counter for both directions during the handshake (unlike textbook Noise,
    where each CipherState has its own); mix_key resets it.
    """

    __slots__ = ("_aead", "_ck", "_counter", "_h")

    def __init__(self) -> None:
        self._h = PROTOCOL_NAME
        self._ck = PROTOCOL_NAME
        self._aead = AESGCM(PROTOCOL_NAME)
        self._counter = 0

    def __repr__(self) -> str:
        # h, ck and k are secrets of the session: show nothing of them.
        return f"SymmetricState(counter={self._counter})"

    @property
    def handshake_hash(self) -> bytes:
        """The running hash h (channel binding value once the handshake is done)."""
        return self._h

    def mix_hash(self, data: bytes) -> None:
        self._h = crypto.sha256(self._h + data)

    def mix_key(self, ikm: bytes) -> None:
        okm = crypto.hkdf(ikm, 2 * HASH_SIZE, salt=self._ck)
        self._ck = okm[:HASH_SIZE]
        self._aead = AESGCM(okm[HASH_SIZE:])
        self._counter = 0

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self._aead.encrypt(self._next_nonce(), plaintext, self._h)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        """Decrypt with AAD = h; a bad tag raises HandshakeError."""
        iv = self._next_nonce()
        if len(ciphertext) < TAG_SIZE:
            raise HandshakeError("handshake ciphertext shorter than its tag")
        try:
            plaintext = self._aead.decrypt(iv, ciphertext, self._h)
        except InvalidTag:
            raise HandshakeError("handshake ciphertext failed authentication") from None
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[bytes, bytes]:
        """The two transport keys: (initiator's write key, responder's write key)."""
        okm = crypto.hkdf(b"", 2 * HASH_SIZE, salt=self._ck)
        return okm[:HASH_SIZE], okm[HASH_SIZE:]

    def _next_nonce(self) -> bytes:
        if self._counter > _MAX_COUNTER:
            raise HandshakeError("handshake nonce counter exhausted")
        iv = nonce(self._counter)
        self._counter += 1
        return iv
