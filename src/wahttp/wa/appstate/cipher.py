"""AES-256-CBC with PKCS#7 padding and the IV prefixed, as app-state values (and media) use it."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

IV_SIZE = 16


def cbc_encrypt(key: bytes, plaintext: bytes, iv: bytes | None = None) -> bytes:
    iv = os.urandom(IV_SIZE) if iv is None else iv
    if len(iv) != IV_SIZE:
        raise ValueError("a CBC IV has 16 bytes")
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + enc.update(padded) + enc.finalize()


def cbc_decrypt(key: bytes, data: bytes) -> bytes:
    """Raises ValueError on a wrong length or bad padding."""
    if len(data) < 2 * IV_SIZE or len(data) % IV_SIZE:
        raise ValueError("not an IV-prefixed AES-CBC ciphertext")
    dec = Cipher(algorithms.AES(key), modes.CBC(data[:IV_SIZE])).decryptor()
    padded = dec.update(data[IV_SIZE:]) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()
