"""Encryption at rest of auth state, sent message copies and webhook payloads: the Sealer the
settings ask for (wa/auth/sealing.py).

WAHTTP_ENCRYPTION_KEY holds one or more `[kid:]key` entries (comma separated, the first one
seals, all of them open); WAHTTP_ENCRYPTION_KEY_FILE names a file with one entry per line, in
the same order. Without either, all of it is kept in clear as the Node.js original kept it,
and the service says so once at start.
"""

from __future__ import annotations

import logging
import stat

from wahttp.server.settings import Settings
from wahttp.wa.auth.sealing import KeyConfigError, Sealer, load_key_file, parse_keys

log = logging.getLogger(__name__)

CLEAR_WARNING = (
    "auth state, sent messages and webhook payloads are stored in clear; set"
    " WAHTTP_ENCRYPTION_KEY (or WAHTTP_ENCRYPTION_KEY_FILE) to encrypt them at rest"
)


def sealer_from_settings(settings: Settings) -> Sealer | None:
    """The configured key ring, or None without a key; KeyConfigError when it is malformed."""
    secret = settings.encryption_key
    text = secret.get_secret_value().strip() if secret is not None else ""
    path = settings.encryption_key_file
    if text and path is not None:
        raise KeyConfigError("set WAHTTP_ENCRYPTION_KEY or WAHTTP_ENCRYPTION_KEY_FILE, not both")
    if text:
        return Sealer(parse_keys(text, "WAHTTP_ENCRYPTION_KEY"))
    if path is not None:
        keys = load_key_file(path)
        try:
            mode = path.stat().st_mode
        except OSError:
            mode = 0
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("key file %s is accessible to other users; chmod 600 it", path)
        return Sealer(keys)
    return None


def startup_sealer(settings: Settings) -> Sealer | None:
    """sealer_from_settings, saying once what the service does with auth state."""
    sealer = sealer_from_settings(settings)
    if sealer is None:
        log.warning(CLEAR_WARNING)
    else:
        log.info(
            "auth state, sent messages and webhook payloads are encrypted at rest (AES-256-GCM);"
            " sealing under key id %r, %d key(s)",
            sealer.current_kid,
            len(sealer.kids),
        )
    return sealer
