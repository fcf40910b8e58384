"""Client settings: where to connect, which root key to trust, how to present ourselves."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from wahttp.wa.certs import WA_ROOT_PUBLIC_KEY, parse_root_key
from wahttp.wa.client.version import AUTO, LATEST_URL, PINNED_VERSION, parse_version

DEFAULT_URL = "wss://web.whatsapp.com/ws/chat"
# The web client version we announce; a stale one gets <failure reason=405>, so it is configurable.
DEFAULT_VERSION = PINNED_VERSION


@dataclass(slots=True)
class ClientConfig:
    url: str = DEFAULT_URL
    root_key: bytes = WA_ROOT_PUBLIC_KEY
    version: tuple[int, int, int] = DEFAULT_VERSION
    # WAHTTP_WA_VERSION=auto: fetch the current version from version_url before connecting
    # (falling back to `version`), see version.py.
    version_auto: bool = False
    version_url: str = LATEST_URL
    # WAHTTP_REJECT_CALLS: answer every incoming call offer with a reject (call.py).
    reject_calls: bool = False
    browser: tuple[str, str] = ("Mac OS", "Chrome")  # (os, browser), as Baileys' `browser`
    push_name: str | None = None
    connect_timeout: float = 20.0
    query_timeout: float = 60.0
    keepalive_interval: float = 25.0
    # Silence longer than interval + grace means the link is dead (Baileys: 30 s + 5 s).
    keepalive_grace: float = 5.0
    # How long the first QR stays valid, then each following one.
    qr_first_timeout: float = 60.0
    qr_next_timeout: float = 20.0
    initial_pre_keys: int = 812
    min_pre_keys: int = 5
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ClientConfig:
        """Read WAHTTP_WA_URL, WAHTTP_WA_ROOT_KEY (base64 or hex), WAHTTP_WA_VERSION[_URL] and
        WAHTTP_REJECT_CALLS; other fields keep defaults."""
        src = os.environ if env is None else env
        cfg = cls()
        if src.get("WAHTTP_WA_URL"):
            cfg.url = src["WAHTTP_WA_URL"]
        if src.get("WAHTTP_WA_ROOT_KEY"):
            cfg.root_key = parse_root_key(src["WAHTTP_WA_ROOT_KEY"])
        wanted = src.get("WAHTTP_WA_VERSION", "").strip()
        if wanted.lower() == AUTO:
            cfg.version_auto = True
        elif wanted:
            cfg.version = parse_version(wanted)
        if src.get("WAHTTP_WA_VERSION_URL"):
            cfg.version_url = src["WAHTTP_WA_VERSION_URL"]
        if src.get("WAHTTP_REJECT_CALLS"):
            cfg.reject_calls = src["WAHTTP_REJECT_CALLS"].strip().lower() in ("1", "true", "yes")
        return cfg
