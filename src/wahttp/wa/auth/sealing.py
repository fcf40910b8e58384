"""Encryption at rest of auth state: AES-256-GCM envelopes bound to the place a value lives.

A sealed value is a JSON object that takes the place of the clear value (a database column, a
row's value, a file's content):

    {"wahttp:sealed": 1, "kid": "<key id>", "salt": "<b64>", "iv": "<b64>", "ct": "<b64>"}

`ct` is AES-256-GCM (ciphertext followed by the 16-byte tag) of the value's JSON text. The key
is HKDF-SHA256(master key of `kid`, `salt`): a sealer draws a fresh random 16-byte salt when
it starts and again every 2**24 seals, so no derived key ever sees enough random 96-bit IVs
for a collision to matter (GCM's limit with random IVs is 2**32 messages per key), while the
AESGCM object is still built once per derived key, not per value. The associated data names
where the value lives (session, category, key id; see SealContext), so a sealed value copied
to another row, file or session does not open.

A value without the "wahttp:sealed" member is clear (written without a key, or by the Node.js
original) and is passed through as it is; it is sealed the next time it is written.

Keys are 32 bytes, written as base64 or hex, optionally prefixed with a key id: `kid:key`.
Without a key id one is derived from the key (8 hex digits of a SHA-256). Neither the keys nor
the clear values ever appear in an error message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from wahttp.wa.auth.bufferjson import URL_SAFE
from wahttp.wa.errors import StoreError

__all__ = [
    "KEY_SIZE",
    "SEALED",
    "KeyConfigError",
    "SealContext",
    "SealError",
    "Sealer",
    "derive_key_id",
    "is_sealed",
    "load_key_file",
    "open_sealed",
    "parse_keys",
]

SEALED: Final = "wahttp:sealed"
FORMAT: Final = 1
KEY_SIZE: Final = 32
_SALT_SIZE = 16
_IV_SIZE = 12
_TAG_SIZE = 16
SEALS_PER_SUBKEY: Final = 1 << 24
_SUBKEY_CACHE = 256
_HKDF_INFO = b"wahttp auth at rest v1"
_KID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_HEX_KEY = re.compile(r"[0-9A-Fa-f]{64}")
_B64_KEY = re.compile(r"[A-Za-z0-9+/_-]{43}=?")
_MAX_KEY_FILE = 64 * 1024


class SealError(StoreError):
    """A sealed value cannot be opened: no key, an unknown key id, the wrong key, or the value
    was altered or moved from where it was sealed."""


class KeyConfigError(SealError):
    """The configured encryption keys are malformed (the message never holds key material)."""


@dataclass(frozen=True, slots=True)
class SealContext:
    """Where a value lives; it is the associated data of its seal.

    `category` None stands for the creds; otherwise the key's category and its id in file-name
    form, as stored in `auth_keys` and in a folder's file names.
    """

    session_id: str
    category: str | None = None
    key_id: str | None = None

    def aad(self) -> bytes:
        return json.dumps([SEALED, FORMAT, self.session_id, self.category, self.key_id]).encode()

    def __str__(self) -> str:
        if self.category is None:
            return f"the creds of session {self.session_id!r}"
        return f"{self.category} {self.key_id!r} of session {self.session_id!r}"


def is_sealed(value: object) -> bool:
    """Whether a stored value is a sealed envelope (anything else is a clear value)."""
    return isinstance(value, Mapping) and SEALED in value


def derive_key_id(key: bytes) -> str:
    """The key id of a key given without one: 8 hex digits of a SHA-256 of it (not secret)."""
    return hashlib.sha256(b"wahttp key id\x00" + key).hexdigest()[:8]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Sealer:
    """AES-256-GCM sealing under a key ring: the first key seals, every key opens.

    Thread-safe (folders are read and written in worker threads). Its repr shows key ids only.
    """

    def __init__(self, keys: Iterable[tuple[str, bytes]]) -> None:
        self._keys: dict[str, bytes] = {}
        for kid, key in keys:
            if not _KID.fullmatch(kid):
                raise KeyConfigError(f"bad key id {kid!r}: 1-32 letters, digits, '.', '_', '-'")
            if len(key) != KEY_SIZE:
                raise KeyConfigError(f"key {kid!r} has {len(key)} bytes; AES-256 needs 32")
            if kid in self._keys:
                raise KeyConfigError(f"key id {kid!r} is given twice")
            self._keys[kid] = bytes(key)
        if not self._keys:
            raise KeyConfigError("no encryption key given")
        self.current_kid: str = next(iter(self._keys))
        self._lock = threading.Lock()
        self._salt = b""
        self._aead: AESGCM | None = None
        self._uses = 0
        self._subkeys: OrderedDict[tuple[str, bytes], AESGCM] = OrderedDict()

    @property
    def kids(self) -> tuple[str, ...]:
        """The configured key ids, the current one first."""
        return tuple(self._keys)

    def __repr__(self) -> str:
        return f"Sealer(current={self.current_kid!r}, kids={self.kids!r})"

    def is_current(self, value: object) -> bool:
        """Whether a stored value is sealed under the current key (rotation skips nothing else)."""
        return (
            isinstance(value, Mapping) and SEALED in value and value.get("kid") == self.current_kid
        )

    def seal(self, plaintext: bytes, context: SealContext) -> dict[str, Any]:
        """The envelope of `plaintext`, sealed under the current key for `context`."""
        with self._lock:
            if self._aead is None or self._uses >= SEALS_PER_SUBKEY:
                self._salt = secrets.token_bytes(_SALT_SIZE)
                self._aead = self._derive(self.current_kid, self._salt)
            self._uses += 1
            aead, salt = self._aead, self._salt
        iv = os.urandom(_IV_SIZE)
        ct = aead.encrypt(iv, plaintext, context.aad())
        return {
            SEALED: FORMAT,
            "kid": self.current_kid,
            "salt": _b64(salt),
            "iv": _b64(iv),
            "ct": _b64(ct),
        }

    def open(self, envelope: Mapping[str, Any], context: SealContext) -> bytes:
        """The plaintext of a sealed value; SealError if it cannot be authenticated."""
        kid, salt, iv, ct = _fields(envelope, context)
        if kid not in self._keys:
            known = ", ".join(repr(k) for k in self._keys)
            raise SealError(
                f"{context} is sealed under key id {kid!r}, which is not configured"
                f" (configured: {known})"
            )
        try:
            return self._subkey(kid, salt).decrypt(iv, ct, context.aad())
        except InvalidTag:
            raise SealError(
                f"cannot decrypt {context}: the key {kid!r} is not the one it was sealed"
                " with, or the value was altered or moved from another place"
            ) from None

    def _subkey(self, kid: str, salt: bytes) -> AESGCM:
        with self._lock:
            cached = self._subkeys.get((kid, salt))
            if cached is not None:
                self._subkeys.move_to_end((kid, salt))
                return cached
        aead = self._derive(kid, salt)
        with self._lock:
            self._subkeys[(kid, salt)] = aead
            while len(self._subkeys) > _SUBKEY_CACHE:
                self._subkeys.popitem(last=False)
        return aead

    def _derive(self, kid: str, salt: bytes) -> AESGCM:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=_HKDF_INFO)
        return AESGCM(hkdf.derive(self._keys[kid]))


def _fields(envelope: Mapping[str, Any], context: SealContext) -> tuple[str, bytes, bytes, bytes]:
    version = envelope.get(SEALED)
    if version != FORMAT or isinstance(version, bool):
        raise SealError(f"{context} is sealed in an unknown format ({version!r})")
    kid = envelope.get("kid")
    try:
        if not isinstance(kid, str):
            raise TypeError("kid")
        salt, iv, ct = (base64.b64decode(envelope[f], validate=True) for f in ("salt", "iv", "ct"))
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise SealError(f"{context} is a malformed sealed value") from None
    if len(salt) != _SALT_SIZE or len(iv) != _IV_SIZE or len(ct) < _TAG_SIZE:
        raise SealError(f"{context} is a malformed sealed value")
    return kid, salt, iv, ct


def open_sealed(sealer: Sealer | None, envelope: Mapping[str, Any], context: SealContext) -> bytes:
    """`sealer.open`, with a clear error when no key is configured at all."""
    if sealer is None:
        raise SealError(
            f"{context} is encrypted at rest (key id {envelope.get('kid')!r})"
            " and no encryption key is configured"
        )
    return sealer.open(envelope, context)


# --- key configuration --------------------------------------------------------------------


def parse_keys(text: str, where: str) -> list[tuple[str, bytes]]:
    """Keys from `[kid:]key` entries, one per line or comma separated, the current one first.

    Blank lines and lines starting with '#' are skipped. `where` names the source in errors.
    """
    entries: list[tuple[str, bytes]] = []
    number = 0
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        for item in line.split(","):
            if not item.strip():
                continue
            number += 1
            entries.append(_parse_entry(item.strip(), f"{where}, key {number}"))
    if not entries:
        raise KeyConfigError(f"{where}: holds no key")
    return entries


def _parse_entry(entry: str, where: str) -> tuple[str, bytes]:
    kid, sep, encoded = entry.rpartition(":")
    encoded = encoded.strip()
    if _HEX_KEY.fullmatch(encoded):
        key = bytes.fromhex(encoded)
    elif _B64_KEY.fullmatch(encoded):
        key = base64.b64decode(encoded.translate(URL_SAFE).rstrip("=") + "=")
    else:
        raise KeyConfigError(f"{where}: not a 32-byte key in base64 (44 characters) or hex (64)")
    kid = kid.strip() if sep else derive_key_id(key)
    if not _KID.fullmatch(kid):
        raise KeyConfigError(f"{where}: a key id has 1-32 letters, digits, '.', '_' or '-'")
    return kid, key


def load_key_file(path: Path) -> list[tuple[str, bytes]]:
    """The keys of a key file (see parse_keys); KeyConfigError if unreadable or malformed."""
    try:
        with path.open("rb") as file:
            raw = file.read(_MAX_KEY_FILE + 1)
    except OSError as exc:
        raise KeyConfigError(f"{path}: cannot read the key file ({exc.strerror})") from None
    if len(raw) > _MAX_KEY_FILE:
        raise KeyConfigError(f"{path}: larger than {_MAX_KEY_FILE} bytes; not a key file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyConfigError(f"{path}: not a text file") from None
    return parse_keys(text, str(path))
