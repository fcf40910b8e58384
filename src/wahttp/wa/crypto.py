"""Cryptographic primitives the protocol uses: Curve25519 keys, XEdDSA signatures, HKDF, AES, HMAC.

Signatures follow libsignal's convention: the Edwards sign bit travels in the top bit of byte 63.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import os
from dataclasses import dataclass

import xeddsa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

KEY_SIZE = 32
SIGNATURE_SIZE = 64
# libsignal prefixes serialised Curve25519 public keys with this type byte.
DJB_TYPE = 5


def clamp(private: bytes) -> bytes:
    """Clamp a Curve25519 scalar the way libsignal stores private keys."""
    b = bytearray(private)
    b[0] &= 248
    b[31] &= 127
    b[31] |= 64
    return bytes(b)


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A Curve25519 key pair; `private` is the clamped scalar, `public` the 32-byte u-coordinate."""

    private: bytes
    public: bytes

    @classmethod
    def generate(cls) -> KeyPair:
        return cls.from_private(clamp(os.urandom(KEY_SIZE)))

    @classmethod
    def from_private(cls, private: bytes) -> KeyPair:
        if len(private) != KEY_SIZE:
            raise ValueError("a Curve25519 private key has 32 bytes")
        pub = X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
        return cls(private=private, public=pub)

    def __repr__(self) -> str:
        # Never print the private half.
        return f"KeyPair(public={self.public.hex()[:16]}…)"

    def dh(self, peer_public: bytes) -> bytes:
        return x25519(self.private, peer_public)

    def sign(self, message: bytes) -> bytes:
        return sign(self.private, message)


def x25519(private: bytes, peer_public: bytes) -> bytes:
    """Diffie-Hellman on Curve25519; a malformed or low-order peer key raises ValueError."""
    peer = X25519PublicKey.from_public_bytes(strip_key_type(peer_public))
    return X25519PrivateKey.from_private_bytes(private).exchange(peer)


def with_key_type(public: bytes) -> bytes:
    """The 33-byte libsignal form of a public key (type byte 5 first)."""
    return public if len(public) == KEY_SIZE + 1 else bytes([DJB_TYPE]) + public


def strip_key_type(public: bytes) -> bytes:
    """The raw 32-byte public key, accepting libsignal's 33-byte form too."""
    if len(public) == KEY_SIZE + 1 and public[0] == DJB_TYPE:
        return public[1:]
    if len(public) != KEY_SIZE:
        raise ValueError("a Curve25519 public key has 32 bytes (33 with its type byte)")
    return public


def sign(private: bytes, message: bytes) -> bytes:
    """XEdDSA-sign with a Curve25519 private key (sign bit 0, which libsignal accepts)."""
    forced = xeddsa.priv_force_sign(private, False)
    return bytes(xeddsa.ed25519_priv_sign(forced, message))


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """Verify a libsignal-style XEdDSA signature; any malformed input is simply False."""
    if len(signature) != SIGNATURE_SIZE:
        return False
    try:
        raw = strip_key_type(public)
    except ValueError:
        return False
    sign_bit = bool(signature[63] & 0x80)
    sig = signature[:63] + bytes([signature[63] & 0x7F])
    try:
        ed_pub = xeddsa.curve25519_pub_to_ed25519_pub(raw, sign_bit)
        return bool(xeddsa.ed25519_verify(sig, ed_pub, message))
    except xeddsa.XEdDSAException:
        return False


def hkdf(ikm: bytes, length: int, salt: bytes | None = None, info: bytes = b"") -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return _hmac.new(key, data, hashlib.sha256).digest()


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def aes_gcm_encrypt(key: bytes, iv: bytes, plaintext: bytes, aad: bytes | None = None) -> bytes:
    return AESGCM(key).encrypt(iv, plaintext, aad)


def aes_gcm_decrypt(key: bytes, iv: bytes, ciphertext: bytes, aad: bytes | None = None) -> bytes:
    """AES-256-GCM decrypt; a bad tag raises cryptography's InvalidTag."""
    return AESGCM(key).decrypt(iv, ciphertext, aad)


def aes_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-CTR is its own inverse: the same call encrypts and decrypts."""
    ctx = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return ctx.update(data) + ctx.finalize()


def pbkdf2_sha256(password: bytes, salt: bytes, iterations: int, length: int) -> bytes:
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=length, salt=salt, iterations=iterations)
    return kdf.derive(password)
