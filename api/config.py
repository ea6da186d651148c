"""API settings, read once from the environment (FILEORG_*, plus DATABASE_URL and SECRET_KEY).

No engine or settings object is built at import time: `get_settings()` is cached, tests swap
it through `app.dependency_overrides[get_settings]` (the lifespan honours the override too).

The secret: a placeholder or short SECRET_KEY is refused outside development. When none is
given, a random one is generated once and kept in the data folder (mode 0600), so a one-command
local start needs no configuration and tokens survive a restart.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from storage.locations import DataStore
from storage.settings import get_settings as get_storage_settings

PLACEHOLDER_SECRETS = frozenset(
    {"changethis", "changeme", "change-me", "secret", "secret_key", "please-change", "dev"}
)
MIN_SECRET_LENGTH = 32
SECRET_FILE = "api-secret-key"


class ConfigError(RuntimeError):
    """The settings cannot be used (refused at start-up, before any request is served)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FILEORG_", extra="ignore")

    environment: Literal["development", "test", "production"] = "production"
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("FILEORG_DATABASE_URL", "DATABASE_URL")
    )
    secret_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("FILEORG_SECRET_KEY", "SECRET_KEY")
    )
    access_token_minutes: int = Field(default=15, ge=1)
    refresh_token_days: int = Field(default=14, ge=1)
    # The first account signed up on an empty database becomes the admin, unless turned off.
    first_user_admin: bool = True
    signup_open: bool = True
    # Comma-separated in the environment; none by default.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Attempts per window, per account and per client address, for login and signup each.
    # An account is counted once however it is named (username or email).
    auth_attempts_per_account: int = Field(default=10, ge=1)
    auth_attempts_per_address: int = Field(default=30, ge=1)
    auth_window_seconds: float = Field(default=60.0, gt=0)
    # Signups per client address per hour: each answer says whether an email or a username is
    # taken (unavoidable without mail delivery), so probing is held to a few an hour.
    signup_attempts_per_address: int = Field(default=10, ge=1)
    signup_window_seconds: float = Field(default=3600.0, gt=0)
    # Schedules: every run is a whole organize operation (a scan of the root, about a second
    # of Prefect overhead, a process): no schedule runs more often than this, and each user
    # keeps at most so many.
    min_schedule_interval_seconds: int = Field(default=300, ge=1)
    schedules_per_user: int = Field(default=20, ge=0)
    # Argon2id cost (RFC 9106 second recommendation is time 3, 64 MiB); tests lower it.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=64)
    migrate_on_startup: bool = True
    # Bounds every call to the Prefect server. A cold server on SQLite can take several
    # seconds to create its first flow run; past this, the API answers 503.
    prefect_timeout_seconds: float = Field(default=15.0, gt=0)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @property
    def data_url(self) -> str:
        return get_storage_settings().data_url

    def store(self) -> DataStore:
        return DataStore(self.data_url)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        store = self.store()
        if not store.is_local:
            raise ConfigError("set DATABASE_URL: the data folder is not local")
        os.makedirs(store.base, exist_ok=True)
        return f"sqlite:///{store.base}/api.db"

    def resolved_secret(self) -> str:
        if self.secret_key is not None:
            secret = self.secret_key.get_secret_value()
            weak = secret.lower() in PLACEHOLDER_SECRETS or len(secret) < MIN_SECRET_LENGTH
            if weak and self.environment != "development":
                raise ConfigError(
                    f"SECRET_KEY is a placeholder or shorter than {MIN_SECRET_LENGTH} characters;"
                    " set a random one (or unset it to generate one in the data folder)"
                )
            return secret
        return _kept_secret(self.store())


def _kept_secret(store: DataStore) -> str:
    if not store.is_local:
        raise ConfigError("set SECRET_KEY: the data folder is not local")
    os.makedirs(store.base, exist_ok=True)
    path = os.path.join(store.base, SECRET_FILE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_urlsafe(48))
    return _kept_secret(store)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
