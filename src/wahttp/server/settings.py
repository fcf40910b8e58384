"""All service settings, read once from the environment (and an optional .env file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from wahttp.server.webhook_policy import WebhookPolicy
from wahttp.server.webhooks import check_url
from wahttp.wa.certs import WA_ROOT_PUBLIC_KEY, parse_root_key
from wahttp.wa.client.config import DEFAULT_URL, ClientConfig


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
    wa_version: str | None = Field(None, alias="WAHTTP_WA_VERSION")
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
    webhook_concurrency: int = Field(8, alias="WAHTTP_WEBHOOK_CONCURRENCY", ge=1)
    webhook_allow: str | None = Field(
        None,
        alias="WAHTTP_WEBHOOK_ALLOW",
        description="hosts, *.suffixes or CIDRs webhooks may target",
    )
    webhook_deny: str | None = Field(
        None, alias="WAHTTP_WEBHOOK_DENY", description="hosts, *.suffixes or CIDRs never targeted"
    )

    def webhook_policy(self) -> WebhookPolicy:
        return WebhookPolicy.parse(self.webhook_allow, self.webhook_deny)

    api_key: SecretStr | None = Field(
        None,
        alias="WAHTTP_API_KEY",
        min_length=24,
        description="the admin key; unset: one is made in <WAHTTP_DATA_DIR>/admin-api-key",
    )
    auth: Literal["on", "off"] = Field(
        "on", alias="WAHTTP_AUTH", description="off: no API keys at all (the original's way)"
    )
    send_rate: float = Field(
        20.0, alias="WAHTTP_SEND_RATE", ge=0, description="sends a minute per session; 0: no limit"
    )
    send_burst: int = Field(5, alias="WAHTTP_SEND_BURST", ge=1, description="sends at once")
    max_body_bytes: int = Field(262144, alias="WAHTTP_MAX_BODY_BYTES", ge=1)
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
            self.webhook_policy().check(self.webhook_url)
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
        cfg = ClientConfig.from_env(env)
        if not self.wa_root_key:
            cfg.root_key = WA_ROOT_PUBLIC_KEY
        cfg.push_name = self.push_name
        cfg.keepalive_interval = self.keepalive_interval
        cfg.keepalive_grace = self.keepalive_grace
        return cfg
