"""Storage profiles: named object stores (endpoint, region, credentials) set by the operator.

A root or data URL names its profile by its scheme: `s3://bucket/prefix` uses the profile `s3`
(AWS, credentials from the usual boto chain unless configured), `r2://bucket/prefix` the
operator's profile `r2`, and so on. R2, MinIO and other S3-compatible stores are profiles with
an endpoint, not separate code paths. Users (API callers, flow parameters, schedules) only ever
name a profile; endpoints and secrets come from the worker's own configuration, so a user
cannot make the server connect to an endpoint of their choosing, and no secret travels in a
flow-run parameter.

Configured with `FILEORG_PROFILES` (JSON) and/or `FILEORG_PROFILES_FILE` (a TOML file with one
table per profile), for example:

    [r2]
    endpoint_url = "https://<account>.r2.cloudflarestorage.com"
    region = "auto"
    key = "..."
    secret = "..."
    fixed_upload_size = true
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from storage.errors import UserError

PROFILE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
DEFAULT_PROFILE = "s3"
# Schemes that are never profiles: fsspec's own, so `memory://` and `file://` keep their meaning.
RESERVED = frozenset({"file", "local", "memory", "http", "https", "gs", "gcs", "az", "abfs"})


class StorageProfile(BaseModel):
    """One S3-compatible store. Secrets are SecretStr: they never print or serialize."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint_url: str | None = None
    region: str | None = None
    key: SecretStr | None = None
    secret: SecretStr | None = None
    token: SecretStr | None = None
    anon: bool = False
    # Cloudflare R2 needs equal-sized multipart parts.
    fixed_upload_size: bool = False
    # The store honours If-None-Match on PUT / CompleteMultipartUpload and If-Match on
    # GET/DELETE (AWS since 2024, R2, MinIO, moto). Without it writes are checked, not
    # conditional, which leaves a race with other writers: say so in the store's profile.
    conditional_writes: bool = True
    # botocore retries (adaptive mode: backoff and client-side rate limiting on throttling).
    max_attempts: int = Field(default=6, ge=1, le=50)
    # Requests in flight at once for ranged reads and hashing.
    concurrency: int = Field(default=32, ge=1, le=512)

    def describe(self) -> dict[str, Any]:
        """What may be shown to an operator: never the credentials."""
        return {
            "endpoint_url": self.endpoint_url or "(AWS default)",
            "region": self.region,
            "credentials": "configured" if self.key else "default chain",
            "conditional_writes": self.conditional_writes,
        }


def load_profiles(inline: dict[str, Any] | None, path: str | None) -> dict[str, StorageProfile]:
    """Profiles from the settings' JSON value and TOML file; the `s3` profile always exists."""
    raw: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as fh:
                raw.update(tomllib.load(fh))
        except OSError as exc:
            raise UserError(f"cannot read storage profiles file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"storage profiles file {path} is not valid TOML: {exc}") from None
    raw.update(inline or {})
    profiles: dict[str, StorageProfile] = {DEFAULT_PROFILE: StorageProfile()}
    for name, body in raw.items():
        if not PROFILE_NAME.match(name) or name in RESERVED:
            raise UserError(f"storage profile name {name!r} is not allowed")
        try:
            profiles[name] = StorageProfile.model_validate(body)
        except ValidationError as exc:
            # The field names only: a validation error can quote the offending (secret) value.
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
            raise UserError(f"storage profile {name!r} is invalid: {', '.join(fields)}") from None
    return profiles
