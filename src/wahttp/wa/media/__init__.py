"""WhatsApp media: the encryption of attachments and external blobs, and their download.

`crypto` is sans-IO (bytes in, bytes out); `download` is the only module here that opens a
connection (httpx, to the media hosts the server's `media_conn` answer names).
"""

from wahttp.wa.media.crypto import (
    HKDF_INFO,
    EncryptedMedia,
    MediaError,
    MediaKeys,
    decrypt_media,
    encrypt_media,
    hkdf_info,
    media_keys,
)

__all__ = [
    "HKDF_INFO",
    "EncryptedMedia",
    "MediaError",
    "MediaKeys",
    "decrypt_media",
    "encrypt_media",
    "hkdf_info",
    "media_keys",
]
