"""All service settings, read once from the environment (and an optional .env file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from wahttp.server.webhooks.urls import WebhookPolicy, check_url
from wahttp.wa.certs import WA_ROOT_PUBLIC_KEY, parse_root_key
from wahttp.wa.client.config import DEFAULT_URL, ClientConfig
from wahttp.wa.client.version import AUTO, parse_version

MIN_API_KEY_LENGTH = 24
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    host: str = Field("0.0.0.0", alias="HOST", description="address the API listens on")
    port: int = Field(3000, alias="PORT", ge=0, le=65535)
    database_url: str | None = Field(
        None,
        alias="DATABASE_URL",
        description="PostgreSQL DSN; unset: an embedded PostgreSQL under WAHTTP_DATA_DIR",
    )
    db_pool_size: int = Field(
        10,
        alias="WAHTTP_DB_POOL_SIZE",
        ge=3,
        le=1000,
        description="PostgreSQL connections of this process at most (webhook LISTEN and the"
        " worker lease hold one each)",
    )
    db_timeout: float = Field(
        5.0,
        alias="WAHTTP_DB_TIMEOUT",
        gt=0,
        le=300,
        description="seconds a request waits for a database connection before a 503",
    )
    data_dir: Path = Field(Path("data"), alias="WAHTTP_DATA_DIR")
    auth_dir: Path = Field(
        Path("auth_sessions"),
        alias="WAHTTP_AUTH_DIR",
        description="Baileys useMultiFileAuthState folders, one per session",
    )
    auth_mirror: bool = Field(
        True, alias="WAHTTP_AUTH_MIRROR", description="keep auth folders in step with the DB"
    )
    encryption_key: SecretStr | None = Field(
        None,
        alias="WAHTTP_ENCRYPTION_KEY",
        description="[kid:]key (32 bytes, base64 or hex), comma separated: auth state at rest",
    )
    encryption_key_file: Path | None = Field(
        None, alias="WAHTTP_ENCRYPTION_KEY_FILE", description="one [kid:]key a line, current first"
    )
    wa_url: str = Field(DEFAULT_URL, alias="WAHTTP_WA_URL")
    wa_root_key: str | None = Field(None, alias="WAHTTP_WA_ROOT_KEY")
    wa_version: str | None = Field(
        None,
        alias="WAHTTP_WA_VERSION",
        description="web client version (2.3000.N) or auto: fetch the current one at connect",
    )
    wa_version_url: str | None = Field(
        None, alias="WAHTTP_WA_VERSION_URL", description="where auto reads the version (sw.js)"
    )
    reject_calls: bool = Field(
        False, alias="WAHTTP_REJECT_CALLS", description="reject every incoming call offer"
    )
    push_name: str | None = Field(None, alias="WAHTTP_PUSH_NAME")
    reconnect_base: float = Field(1.0, alias="WAHTTP_RECONNECT_BASE", gt=0)
    reconnect_max: float = Field(60.0, alias="WAHTTP_RECONNECT_MAX", gt=0)
    shutdown_timeout: float = Field(10.0, alias="WAHTTP_SHUTDOWN_TIMEOUT", gt=0)
    keepalive_interval: float = Field(25.0, alias="WAHTTP_KEEPALIVE_INTERVAL", gt=0)
    keepalive_grace: float = Field(
        5.0,
        alias="WAHTTP_KEEPALIVE_GRACE",
        gt=0,
        description="a dead link shows within interval+grace",
    )
    pairing_wait: float = Field(
        20.0, alias="WAHTTP_PAIRING_WAIT", gt=0, description="wait for a registration stream"
    )
    log_level: str = Field("INFO", alias="WAHTTP_LOG_LEVEL")
    webhook_url: str | None = Field(
        None, alias="WAHTTP_WEBHOOK_URL", description="global webhook: every session's events"
    )
    webhook_secret: str | None = Field(None, alias="WAHTTP_WEBHOOK_SECRET", min_length=16)
    webhook_max_attempts: int = Field(10, alias="WAHTTP_WEBHOOK_MAX_ATTEMPTS", ge=1)
    webhook_timeout: float = Field(10.0, alias="WAHTTP_WEBHOOK_TIMEOUT", gt=0)
    webhook_backoff_base: float = Field(1.0, alias="WAHTTP_WEBHOOK_BACKOFF_BASE", gt=0)
    webhook_backoff_max: float = Field(300.0, alias="WAHTTP_WEBHOOK_BACKOFF_MAX", gt=0)
    webhook_concurrency: int = Field(
        64, alias="WAHTTP_WEBHOOK_CONCURRENCY", ge=1, description="deliveries at once, in all"
    )
    webhook_target_concurrency: int = Field(
        8,
        alias="WAHTTP_WEBHOOK_TARGET_CONCURRENCY",
        ge=1,
        description="deliveries at once to one URL: a slow endpoint delays only itself",
    )
    webhook_allow_private: bool = Field(
        False,
        alias="WAHTTP_WEBHOOK_ALLOW_PRIVATE",
        description="URLs set through the API may reach loopback, private and link-local"
        " addresses (WAHTTP_WEBHOOK_URL always may)",
    )
    webhook_allow: str | None = Field(
        None,
        alias="WAHTTP_WEBHOOK_ALLOW",
        description="hosts, *.suffixes or CIDRs webhooks may target",
    )
    webhook_deny: str | None = Field(
        None, alias="WAHTTP_WEBHOOK_DENY", description="hosts, *.suffixes or CIDRs never targeted"
    )

    def webhook_policy(self) -> WebhookPolicy:
        """Where URLs set through the API may go (`.operator()`: the operator's own URL)."""
        return WebhookPolicy.parse(
            self.webhook_allow, self.webhook_deny, allow_internal=self.webhook_allow_private
        )

    api_key: SecretStr | None = Field(
        None,
        alias="WAHTTP_API_KEY",
        description="the admin key (24+ characters); unset: one is made in"
        " <WAHTTP_DATA_DIR>/admin-api-key",
    )
    auth: Literal["on", "off"] = Field(
        "on", alias="WAHTTP_AUTH", description="off: no API keys at all (the original's way)"
    )
    send_rate: float = Field(
        20.0, alias="WAHTTP_SEND_RATE", ge=0, description="sends a minute per session; 0: no limit"
    )
    send_burst: int = Field(5, alias="WAHTTP_SEND_BURST", ge=1, description="sends at once")
    max_body_bytes: int = Field(262144, alias="WAHTTP_MAX_BODY_BYTES", ge=1)
    # The HTTP edge (server/edge.py): how long a client may take, and how many it may be.
    header_timeout: float = Field(
        10.0, alias="WAHTTP_HEADER_TIMEOUT", gt=0, description="seconds to send a request's headers"
    )
    request_timeout: float = Field(
        30.0, alias="WAHTTP_REQUEST_TIMEOUT", gt=0, description="seconds to send a request's body"
    )
    idle_timeout: int = Field(
        5, alias="WAHTTP_IDLE_TIMEOUT", ge=1, description="idle keep-alive seconds"
    )
    max_connections: int = Field(
        1000, alias="WAHTTP_MAX_CONNECTIONS", ge=1, description="open HTTP connections at most"
    )
    pair_rate: float = Field(
        2.0,
        alias="WAHTTP_PAIR_RATE",
        ge=0,
        description="new pairing codes a minute per session; 0: no limit",
    )
    pair_burst: int = Field(3, alias="WAHTTP_PAIR_BURST", ge=1, description="new codes at once")
    message_retention_days: int = Field(
        30,
        alias="WAHTTP_MESSAGE_RETENTION_DAYS",
        ge=0,
        description="delete message rows (statuses, sent copies) older than this; 0: keep",
    )
    webhook_retention_days: int = Field(
        7,
        alias="WAHTTP_WEBHOOK_RETENTION_DAYS",
        ge=0,
        description="delete delivered and dead webhook deliveries older than this; 0: keep",
    )
    retention_interval: float = Field(
        3600.0, alias="WAHTTP_RETENTION_INTERVAL", gt=0, description="seconds between prunes"
    )

    worker_url: str | None = Field(
        None,
        alias="WAHTTP_WORKER_URL",
        description="where other workers reach this one (default http://127.0.0.1:PORT)",
    )
    lease_ttl: float = Field(
        20.0, alias="WAHTTP_LEASE_TTL", gt=0, description="a hung worker's sessions move after"
    )
    lease_interval: float = Field(
        3.0, alias="WAHTTP_LEASE_INTERVAL", gt=0, description="renew and scan for orphans every"
    )
    rebalance: bool = Field(
        True, alias="WAHTTP_REBALANCE", description="hand sessions to workers under their share"
    )

    def advertised_url(self) -> str | None:
        """The URL other workers forward this worker's sessions' requests to."""
        if self.worker_url:
            return self.worker_url.rstrip("/")
        if not self.port:
            return None
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::", "localhost") else self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @model_validator(mode="after")
    def _lease(self) -> Self:
        if self.lease_interval * 2 >= self.lease_ttl:
            raise ValueError("WAHTTP_LEASE_INTERVAL must be under half of WAHTTP_LEASE_TTL")
        return self

    @model_validator(mode="after")
    def _webhook(self) -> Self:
        if self.webhook_url:
            check_url(self.webhook_url)
            self.webhook_policy().operator().check(self.webhook_url)
            if not self.webhook_secret:
                raise ValueError("WAHTTP_WEBHOOK_URL needs WAHTTP_WEBHOOK_SECRET (16+ characters)")
        return self

    @field_validator("auth", mode="before")
    @classmethod
    def _auth_mode(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_key")
    @classmethod
    def _usable_key(cls, value: SecretStr | None) -> SecretStr | None:
        # Presented keys are stripped, so a key with spaces around it would never match.
        # The messages never include the key (see describe_errors).
        if value is None:
            return None
        key = value.get_secret_value()
        if key != key.strip():
            raise ValueError("has leading or trailing whitespace, so no request could match it")
        if any(ord(c) < 32 or ord(c) == 127 for c in key):
            raise ValueError("contains a control character")
        if len(key) < MIN_API_KEY_LENGTH:
            raise ValueError(f"must have at least {MIN_API_KEY_LENGTH} characters")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("wa_version")
    @classmethod
    def _wa_version(cls, value: str | None) -> str | None:
        if value and value.strip().lower() != AUTO:
            parse_version(value)
        return value

    @field_validator("wa_root_key")
    @classmethod
    def _root_key(cls, value: str | None) -> str | None:
        if value:
            parse_root_key(value)
        return value

    def client_config(self) -> ClientConfig:
        env = {"WAHTTP_WA_URL": self.wa_url}
        if self.wa_root_key:
            env["WAHTTP_WA_ROOT_KEY"] = self.wa_root_key
        if self.wa_version:
            env["WAHTTP_WA_VERSION"] = self.wa_version
        if self.wa_version_url:
            env["WAHTTP_WA_VERSION_URL"] = self.wa_version_url
        cfg = ClientConfig.from_env(env)
        cfg.reject_calls = self.reject_calls
        if not self.wa_root_key:
            cfg.root_key = WA_ROOT_PUBLIC_KEY
        cfg.push_name = self.push_name
        cfg.keepalive_interval = self.keepalive_interval
        cfg.keepalive_grace = self.keepalive_grace
        return cfg


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per bad setting, `NAME: what is wrong`, never its value (secrets among them)."""
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(part) for part in err.get("loc", ()))
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        value = err.get("input")
        if isinstance(value, str) and len(value) >= 4:
            message = message.replace(value, "<value>")  # a custom message quoting its input
        line = f"{where}: {message}" if where else message
        if line not in lines:
            lines.append(line)
    return lines
