"""Settings read once from the environment (FILEORG_*); tests swap them via cache_clear()."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from platformdirs import user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.profiles import StorageProfile, load_profiles


def _default_data_url() -> str:
    return user_data_dir("fileorg", appauthor=False)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FILEORG_", extra="ignore")

    data_url: str = Field(default_factory=_default_data_url)
    # Rows per scan/classify shard: big enough that an operation on a million files makes a
    # few hundred task runs at most (see DESIGN.md, measured Prefect costs).
    shard_rows: int = Field(default=20_000, ge=1)
    # Files per prefix-hash shard and bytes per full-hash shard.
    hash_shard_files: int = Field(default=20_000, ge=1)
    hash_shard_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    # Reads are short syscalls: processes, not threads, and more of them than cores so a cold
    # disk has several requests in flight (8 processes halve a cold prefix pass against 2).
    io_processes: int = Field(default_factory=lambda: max(4, 4 * (os.cpu_count() or 1)), ge=1)
    # Prefect task runner threads: tasks only orchestrate I/O done in the process pool.
    task_workers: int = Field(default=4, ge=1)
    # Object-store profiles (storage.profiles): JSON here and/or a TOML file. Read by workers
    # only; never sent by users, never in flow parameters.
    profiles: dict[str, Any] = Field(default_factory=dict)
    profiles_file: str | None = None
    # Where apply and rollback take their locks (storage.locks): `locks/` in a local data
    # folder by default; set it to a folder every worker shares when the data folder is S3.
    lock_dir: str | None = None
    # The CLI's background Prefect server (flows/cli/background.py) stops itself after this
    # many minutes with no run and no request (it costs 1-2% of a core while idle); 0: never.
    server_idle_minutes: float = Field(default=30.0, ge=0)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


_loaded: tuple[Settings, dict[str, StorageProfile]] | None = None


def get_profiles() -> dict[str, StorageProfile]:
    """The configured storage profiles, loaded once per settings object."""
    global _loaded
    settings = get_settings()
    if _loaded is None or _loaded[0] is not settings:
        _loaded = (settings, load_profiles(settings.profiles, settings.profiles_file))
    return _loaded[1]
