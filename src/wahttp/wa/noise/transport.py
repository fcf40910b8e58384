"""The transport cipher after the Noise handshake: AES-256-GCM with one counter per direction."""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from wahttp.wa.errors import CipherError
from wahttp.wa.noise.state import TAG_SIZE, nonce

KEY_SIZE = 32
_MAX_COUNTER = 0xFFFFFFFF
_NO_AAD = b""


class TransportCipher:
    """Encrypts outgoing and decrypts incoming frame payloads of one connection, in order.

    Each direction counts its frames from 0; the counter is the nonce, so a frame that is
    replayed, dropped or reordered fails authentication.
    """

    __slots__ = ("_read", "_read_counter", "_write", "_write_counter")

    def __init__(self, write_key: bytes, read_key: bytes) -> None:
        if len(write_key) != KEY_SIZE or len(read_key) != KEY_SIZE:
            raise ValueError("transport keys have 32 bytes")
        # Built once: an AESGCM object per frame would cost a key schedule each time.
        self._write = AESGCM(write_key)
        self._read = AESGCM(read_key)
        self._write_counter = 0
        self._read_counter = 0

    def __repr__(self) -> str:
        return f"TransportCipher(sent={self._write_counter}, received={self._read_counter})"

    @property
    def write_counter(self) -> int:
        """How many frames this side has encrypted."""
        return self._write_counter

    @property
    def read_counter(self) -> int:
        """How many frames this side has decrypted."""
        return self._read_counter

    def encrypt(self, plaintext: bytes) -> bytes:
        if self._write_counter > _MAX_COUNTER:
            raise CipherError("transport write counter exhausted; reconnect")
        ciphertext = self._write.encrypt(nonce(self._write_counter), plaintext, _NO_AAD)
        self._write_counter += 1
        return ciphertext

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Decrypt the next incoming frame; CipherError leaves the counter where it was."""
        if self._read_counter > _MAX_COUNTER:
            raise CipherError("transport read counter exhausted; reconnect")
        if len(ciphertext) < TAG_SIZE:
            raise CipherError("transport frame shorter than its tag")
        try:
            plaintext = self._read.decrypt(nonce(self._read_counter), ciphertext, _NO_AAD)
        except InvalidTag:
            raise CipherError("transport frame failed authentication") from None
        self._read_counter += 1
        return plaintext
