"""Media encryption as WhatsApp does it for attachments and external blobs (app state, history).

A random 32-byte media key is expanded with HKDF-SHA256 (no salt) to 112 bytes with an info
string per media type (`WhatsApp <Type> Keys`): iv [0:16], cipher key [16:48], MAC key [48:80],
ref key [80:112]. The file on the media host is AES-256-CBC (PKCS#7) of the plain bytes followed
by the first 10 bytes of HMAC-SHA256(MAC key, iv + ciphertext). The message (or blob reference)
carries fileEncSha256 (of the whole encrypted file, MAC included) and fileSha256 (of the plain
bytes). Decryption checks them in that order with the MAC between, as whatsmeow does: a wrong
file is refused before any key touches it. Errors never carry key bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wahttp.wa.crypto import hkdf

# Baileys' MEDIA_HKDF_KEY_MAPPING (Defaults) plus whatsmeow's sticker-pack: media type -> <Type>.
# 'ppic' and 'product-catalog-image' are plain on the wire; Baileys' mapping gives them "".
HKDF_INFO: dict[str, str] = {
    "audio": "Audio",
    "document": "Document",
    "gif": "Video",
    "image": "Image",
    "ppic": "",
    "product": "Image",
    "ptt": "Audio",
    "sticker": "Image",
    "video": "Video",
    "thumbnail-document": "Document Thumbnail",
    "thumbnail-image": "Image Thumbnail",
    "thumbnail-video": "Video Thumbnail",
    "thumbnail-link": "Link Thumbnail",
    "md-msg-hist": "History",
    "md-app-state": "App State",
    "product-catalog-image": "",
    "payment-bg-image": "Payment Background",
    "ptv": "Video",
    "biz-cover-photo": "Image",
    "sticker-pack": "Sticker Pack",
}

MEDIA_KEY_SIZE = 32
MAC_SIZE = 10
BLOCK = 16

REASONS: dict[str, str] = {
    "bad-key": "the media key is not 32 bytes",
    "unknown-type": "unknown media type",
    "too-short": "the encrypted file is too short",
    "enc-sha256": "the encrypted file's SHA-256 does not match fileEncSha256",
    "mac": "the media MAC does not match",
    "decrypt": "the file does not decrypt (bad padding or length)",
    "sha256": "the decrypted file's SHA-256 does not match fileSha256",
    "size": "the file is larger than allowed",
    "download": "the file could not be downloaded",
}


class MediaError(Exception):
    """A media file that cannot be used; `reason` says which check failed (never key bytes)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        text = REASONS.get(reason, reason)
        super().__init__(f"{text}: {detail}" if detail else text)
        self.reason = reason


def hkdf_info(media_type: str) -> bytes:
    """The HKDF info of a media type, as Baileys' hkdfInfoKey builds it."""
    kind = HKDF_INFO.get(media_type)
    if kind is None:
        raise MediaError("unknown-type", media_type)
    return f"WhatsApp {kind} Keys".encode()


@dataclass(frozen=True, slots=True)
class MediaKeys:
    iv: bytes
    cipher_key: bytes
    mac_key: bytes
    ref_key: bytes

    def __repr__(self) -> str:
        return "MediaKeys(…)"


def media_keys(media_key: bytes, media_type: str) -> MediaKeys:
    if len(media_key) != MEDIA_KEY_SIZE:
        raise MediaError("bad-key")
    out = hkdf(media_key, 112, info=hkdf_info(media_type))
    return MediaKeys(out[0:16], out[16:48], out[48:80], out[80:112])


def _mac(keys: MediaKeys, ciphertext: bytes) -> bytes:
    return hmac.new(keys.mac_key, keys.iv + ciphertext, hashlib.sha256).digest()[:MAC_SIZE]


@dataclass(frozen=True, slots=True)
class EncryptedMedia:
    """What an upload produces: the file for the media host and the facts for the message."""

    media_key: bytes
    data: bytes  # ciphertext + 10-byte MAC
    file_sha256: bytes
    file_enc_sha256: bytes
    file_length: int

    def __repr__(self) -> str:
        return f"EncryptedMedia({len(self.data)} bytes)"


def encrypt_media(plain: bytes, media_type: str, media_key: bytes | None = None) -> EncryptedMedia:
    """Encrypt plain bytes for the media host with a fresh (or the given) media key."""
    key = os.urandom(MEDIA_KEY_SIZE) if media_key is None else media_key
    keys = media_keys(key, media_type)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    enc = Cipher(algorithms.AES(keys.cipher_key), modes.CBC(keys.iv)).encryptor()
    ciphertext = enc.update(padded) + enc.finalize()
    data = ciphertext + _mac(keys, ciphertext)
    return EncryptedMedia(
        key, data, hashlib.sha256(plain).digest(), hashlib.sha256(data).digest(), len(plain)
    )


def decrypt_media(
    data: bytes,
    media_key: bytes,
    media_type: str,
    *,
    file_enc_sha256: bytes | None = None,
    file_sha256: bytes | None = None,
) -> bytes:
    """Check and decrypt a downloaded file: its SHA-256 (when given), the MAC, then the plain
    bytes' SHA-256 (when given). Raises MediaError."""
    keys = media_keys(media_key, media_type)
    if len(data) < MAC_SIZE + BLOCK or (len(data) - MAC_SIZE) % BLOCK:
        raise MediaError("too-short" if len(data) < MAC_SIZE + BLOCK else "decrypt")
    if file_enc_sha256 and not hmac.compare_digest(hashlib.sha256(data).digest(), file_enc_sha256):
        raise MediaError("enc-sha256")
    ciphertext, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
    if not hmac.compare_digest(_mac(keys, ciphertext), mac):
        raise MediaError("mac")
    dec = Cipher(algorithms.AES(keys.cipher_key), modes.CBC(keys.iv)).decryptor()
    padded = dec.update(ciphertext) + dec.finalize()
    try:
        unpadder = padding.PKCS7(128).unpadder()
        plain = unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise MediaError("decrypt") from exc
    if file_sha256 and not hmac.compare_digest(hashlib.sha256(plain).digest(), file_sha256):
        raise MediaError("sha256")
    return plain
