"""Authentication state: credentials, the key store protocol, and Baileys' JSON forms."""

from wahttp.wa.auth.creds import Creds, Me, SignalIdentity, SignedPreKey, new_creds
from wahttp.wa.auth.store import AuthStore, MemoryAuthStore

__all__ = [
    "AuthStore",
    "Creds",
    "Me",
    "MemoryAuthStore",
    "SignalIdentity",
    "SignedPreKey",
    "new_creds",
]
