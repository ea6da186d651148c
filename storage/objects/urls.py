"""What names an object: a root (`profile://bucket/prefix`), checked once, and what a listing
or a HEAD says of one object."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from storage.errors import RootError
from storage.profiles import RESERVED, StorageProfile

URL = re.compile(r"^([a-z][a-z0-9-]{0,31})://(.*)$", re.DOTALL)
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    mtime_ns: int
    version_id: str | None = None


def plain_etag(value: str | None) -> str:
    """An ETag without the quotes S3 puts around it."""
    return (value or "").strip('"')


def mtime_ns(value: datetime) -> int:
    return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1000


def is_object_url(text: str) -> bool:
    match = URL.match(text)
    return match is not None and match.group(1) not in RESERVED


@dataclass(frozen=True, slots=True)
class ObjectRoot:
    """A bucket, or a prefix in it, reached through a named storage profile."""

    profile: str
    bucket: str
    prefix: str  # without leading or trailing "/"; "" is the whole bucket

    @property
    def url(self) -> str:
        return f"{self.profile}://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")

    @property
    def key_prefix(self) -> str:
        """What every key under the root starts with."""
        return f"{self.prefix}/" if self.prefix else ""

    def key(self, rel: bytes | str) -> str:
        text = rel.decode("utf-8") if isinstance(rel, bytes) else rel
        return self.key_prefix + text

    def rel(self, key: str) -> str:
        return key[len(self.key_prefix) :]

    def contains(self, other: ObjectRoot) -> bool:
        """`other` is this root or lies inside it (whole path components only)."""
        if (other.profile, other.bucket) != (self.profile, self.bucket):
            return False
        return (
            not self.prefix
            or other.prefix == self.prefix
            or (other.prefix.startswith(self.prefix + "/"))
        )

    def overlaps(self, other: ObjectRoot) -> bool:
        return self.contains(other) or other.contains(self)


def parse_object_url(text: str, profiles: dict[str, StorageProfile] | None = None) -> ObjectRoot:
    """The canonical root of `profile://bucket/prefix`, or RootError saying what is wrong."""
    match = URL.match(text)
    if not match or match.group(1) in RESERVED:
        raise RootError(f"{text!r} is not an object-store URL (profile://bucket/prefix)")
    profile, rest = match.group(1), match.group(2)
    if profiles is None:
        from storage.settings import get_profiles

        profiles = get_profiles()
    if profile not in profiles:
        raise RootError(f"unknown storage profile {profile!r}: the operator has not configured it")
    bucket, _, prefix = rest.partition("/")
    if "@" in bucket or ":" in bucket:
        # Never echo it back: what was typed there may be a key and a secret.
        raise RootError(
            "credentials and endpoints cannot be given in a URL: "
            "the operator's storage profile has them"
        )
    if not BUCKET.match(bucket) or ".." in bucket:
        raise RootError(f"{bucket!r} is not a valid bucket name")
    prefix = prefix[:-1] if prefix.endswith("/") else prefix
    if prefix:
        for part in prefix.split("/"):
            if part in ("", ".", "..") or "\x00" in part:
                raise RootError(f"{text!r}: empty, '.' and '..' path components are not allowed")
    if len(prefix.encode("utf-8", "surrogatepass")) > 900:
        raise RootError(f"{text!r}: prefix too long")
    try:
        prefix.encode("utf-8")
    except UnicodeEncodeError:
        raise RootError(f"{text!r}: object keys must be valid UTF-8") from None
    return ObjectRoot(profile, bucket, prefix)
