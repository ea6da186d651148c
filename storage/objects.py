"""Object-store roots (`s3://bucket/prefix`, `r2://...`) and every request made on them.

All S3 traffic of the pipeline goes through `ObjectStore`, so the rules live in one place:

* reads of a scanned object carry `If-Match: <scanned ETag>`: content that changed since the
  scan is never hashed, classified or copied as if it were the scanned object;
* writes carry `If-None-Match: *` (PUT and CompleteMultipartUpload): a copy never overwrites a
  key, even one written by somebody else a moment earlier;
* deletes carry `If-Match`: a source is deleted only if it is still the object that was copied;
* every copy is verified (size and MD5-based ETag computed while copying, else a re-read).

Stores without conditional requests (profile `conditional_writes = false`) get the same checks
as a HEAD just before the write or delete, which leaves a window against concurrent writers.

Requests run on s3fs's event loop with bounded concurrency; botocore retries throttling and
transient errors with adaptive backoff, then s3fs's own retries apply. Errors reach callers as
`StorageError` subclasses with one line a user can act on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import blake3
from fsspec.asyn import sync

from storage.errors import RootError, StorageError
from storage.profiles import RESERVED, StorageProfile

T = TypeVar("T")


class _RedactCredentials(logging.Filter):
    """botocore logs signed requests at DEBUG (headers and canonical request), which carry the
    access key id and a session token. Redacted at the source; the secret key itself is never
    logged by botocore (it only signs with it)."""

    ACCESS_KEY_ID = re.compile(r"(Credential=)[^/\s,'\"]+")
    SESSION_TOKEN = re.compile(r"(?i)(x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?)[^\s,'\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.SESSION_TOKEN.sub(
            r"\1<redacted>", self.ACCESS_KEY_ID.sub(r"\1<redacted>", message)
        )
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_REDACT = _RedactCredentials()
for _name in ("botocore.endpoint", "botocore.auth"):
    logging.getLogger(_name).addFilter(_REDACT)

URL = re.compile(r"^([a-z][a-z0-9-]{0,31})://(.*)$", re.DOTALL)
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Objects up to this size are copied with one GET and one conditional PUT; bigger ones in
# parts of this size (multipart, conditional on completion). Also the read size when hashing.
PART_SIZE = 64 * 1024 * 1024
CHUNK = 1024 * 1024


# Requests made by this process, by S3 operation: the benchmark's requests-per-object figures
# and the tests' "not read again" checks read it. Updated on s3fs's single event-loop thread.
REQUESTS: Counter[str] = Counter()


class ObjectExists(StorageError):
    """The destination key exists: nothing was written."""


class ObjectChanged(StorageError):
    """The object is not the one expected (its ETag differs, or it is gone)."""


class CopyMismatch(StorageError):
    """A copy was written but does not verify against its source."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    mtime_ns: int
    version_id: str | None = None


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


def filesystem(profile_name: str) -> Any:
    """The s3fs filesystem of a profile (s3fs keeps one instance per set of options)."""
    import s3fs

    from storage.settings import get_profiles

    profiles = get_profiles()
    if profile_name not in profiles:
        raise RootError(f"unknown storage profile {profile_name!r}")
    profile = profiles[profile_name]
    client_kwargs: dict[str, Any] = {}
    if profile.region:
        client_kwargs["region_name"] = profile.region
    fs = s3fs.S3FileSystem(
        anon=profile.anon,
        key=profile.key.get_secret_value() if profile.key else None,
        secret=profile.secret.get_secret_value() if profile.secret else None,
        token=profile.token.get_secret_value() if profile.token else None,
        endpoint_url=profile.endpoint_url,
        client_kwargs=client_kwargs,
        config_kwargs={"retries": {"max_attempts": profile.max_attempts, "mode": "adaptive"}},
        fixed_upload_size=profile.fixed_upload_size,
        # The bucket changes under us (that is the point): never answer from a stale listing.
        use_listings_cache=False,
        max_concurrency=min(profile.concurrency, 64),
    )
    # botocore already retries throttling and transient errors with adaptive backoff; s3fs's
    # own five retries on top would multiply the wait before a user hears of a dead store.
    fs.retries = 2
    return fs


def error_code(exc: BaseException) -> str | None:
    """The S3 error code behind an exception that s3fs translated, if any."""
    for candidate in (exc, exc.__cause__, exc.__context__):
        response = getattr(candidate, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            return str(code) if code is not None else None
    return None


def describe(exc: BaseException, what: str) -> str:
    """One line for a user: what failed and why, without request ids or credentials."""
    code = error_code(exc)
    messages = {
        "NoSuchBucket": f"{what}: the bucket does not exist",
        "AccessDenied": f"{what}: access denied (check the storage profile's credentials)",
        "InvalidAccessKeyId": f"{what}: the storage profile's access key is not valid",
        "SignatureDoesNotMatch": f"{what}: the storage profile's secret key is not valid",
        "SlowDown": f"{what}: the store is throttling requests (retries exhausted)",
        "Throttling": f"{what}: the store is throttling requests (retries exhausted)",
        "RequestTimeout": f"{what}: the store timed out (retries exhausted)",
    }
    if code in messages:
        return messages[code]
    from botocore.exceptions import EndpointConnectionError

    if isinstance(exc, EndpointConnectionError) or isinstance(
        exc.__cause__, EndpointConnectionError
    ):
        return f"{what}: the store cannot be reached (check the profile's endpoint)"
    if isinstance(exc, FileNotFoundError):
        return f"{what}: not found"
    if isinstance(exc, PermissionError):
        return f"{what}: access denied (check the storage profile's credentials)"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{what}: {code + ': ' if code else ''}{text}"[:300]


def _check_same(src: ObjectInfo, answer: dict[str, Any], size: int) -> None:
    if _etag(answer.get("ETag")) != src.etag or size != src.size:
        raise ObjectChanged(f"{src.key} changed since it was scanned")


# Headers of a GET/HEAD that a PUT takes back unchanged. Tags, ACLs and encryption settings
# are not copied (tags and ACLs cost a request each; the bucket's defaults apply).
_KEPT_HEADERS = (
    "ContentType",
    "ContentEncoding",
    "ContentDisposition",
    "ContentLanguage",
    "CacheControl",
    "Expires",
    "StorageClass",
)


def _copied_metadata(answer: dict[str, Any]) -> dict[str, Any]:
    """What a copy keeps of its source: user metadata, content headers, storage class."""
    extra: dict[str, Any] = {"Metadata": answer.get("Metadata", {})}
    for name in _KEPT_HEADERS:
        if answer.get(name):
            extra[name] = answer[name]
    return extra


def _precondition_failed(exc: BaseException) -> bool:
    # GET/DELETE answer with an error document; HEAD has no body, only the status.
    return error_code(exc) in ("PreconditionFailed", "412")


def _etag(value: str | None) -> str:
    return (value or "").strip('"')


def _mtime_ns(value: datetime) -> int:
    return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1000


class ObjectStore:
    """The requests of the pipeline on one object root."""

    def __init__(self, root: ObjectRoot) -> None:
        from storage.settings import get_profiles

        self.root = root
        self.profile = get_profiles()[root.profile]
        self.fs = filesystem(root.profile)
        self.bucket = root.bucket
        self.requests = 0  # counted for the benchmark and the tests' request budgets

    # -- plumbing -------------------------------------------------------------------------

    def _run(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        return sync(self.fs.loop, fn, *args, **kwargs)  # type: ignore[no-any-return]

    async def _call(self, method: str, **kwargs: Any) -> Any:
        self.requests += 1
        REQUESTS[method] += 1
        return await self.fs._call_s3(method, Bucket=self.bucket, **kwargs)

    async def _gather(
        self, items: Sequence[Any], fn: Callable[[Any], Awaitable[T]]
    ) -> list[T | BaseException]:
        gate = asyncio.Semaphore(self.profile.concurrency)

        async def one(item: Any) -> T | BaseException:
            async with gate:
                try:
                    return await fn(item)
                except Exception as exc:  # one object's failure is that object's error
                    return exc

        return list(await asyncio.gather(*(one(i) for i in items)))

    # -- checks and listing ---------------------------------------------------------------

    def check(self) -> None:
        """The bucket exists and we may list the root; RootError otherwise."""
        try:
            self._run(self._call, "list_objects_v2", Prefix=self.root.key_prefix, MaxKeys=1)
        except Exception as exc:
            raise RootError(describe(exc, f"root {self.root.url}")) from None

    def versioned(self) -> bool:
        try:
            answer = self._run(self._call, "get_bucket_versioning")
        except Exception:
            return False  # not allowed to ask: list the plain way
        return bool(answer.get("Status") == "Enabled")

    def list_pages(self, versioned: bool = False) -> Iterator[list[ObjectInfo]]:
        """Every object under the root, 1,000 per request, in key order.

        On a versioned bucket the current version of each key, with its version id; delete
        markers hide their key as they do for any reader.
        """
        token: dict[str, str] = {}
        while True:
            if versioned:
                page = self._run(
                    self._call, "list_object_versions", Prefix=self.root.key_prefix, **token
                )
                infos = [
                    ObjectInfo(
                        v["Key"],
                        int(v["Size"]),
                        _etag(v.get("ETag")),
                        _mtime_ns(v["LastModified"]),
                        v.get("VersionId"),
                    )
                    for v in page.get("Versions", [])
                    if v.get("IsLatest")
                ]
                hidden = {m["Key"] for m in page.get("DeleteMarkers", []) if m.get("IsLatest")}
                infos = [i for i in infos if i.key not in hidden]
                if not page.get("IsTruncated"):
                    yield infos
                    return
                token = {
                    "KeyMarker": page["NextKeyMarker"],
                    "VersionIdMarker": page["NextVersionIdMarker"],
                }
            else:
                page = self._run(
                    self._call, "list_objects_v2", Prefix=self.root.key_prefix, **token
                )
                infos = [
                    ObjectInfo(
                        c["Key"], int(c["Size"]), _etag(c.get("ETag")), _mtime_ns(c["LastModified"])
                    )
                    for c in page.get("Contents", [])
                ]
                if not page.get("IsTruncated"):
                    yield infos
                    return
                token = {"ContinuationToken": page["NextContinuationToken"]}
            yield infos

    def head(self, key: str) -> ObjectInfo | None:
        return self._run(self._head, key)

    async def _head(self, key: str) -> ObjectInfo | None:
        try:
            answer = await self._call("head_object", Key=key)
        except FileNotFoundError:
            return None
        return ObjectInfo(
            key,
            int(answer["ContentLength"]),
            _etag(answer.get("ETag")),
            _mtime_ns(answer["LastModified"]),
            answer.get("VersionId"),
        )

    # -- reads ----------------------------------------------------------------------------

    async def _get(self, key: str, etag: str | None, start: int, end: int | None) -> bytes:
        """Bytes [start, end) of `key` (to the end when `end` is None), if it is still `etag`."""
        if end is not None and end <= start:
            return b""
        return (await self._get_answer(key, etag, start, end))[0]

    async def _get_answer(
        self, key: str, etag: str | None, start: int, end: int | None
    ) -> tuple[bytes, dict[str, Any]]:
        """`_get` with the response's headers (ETag, ContentType, Metadata...)."""
        answer = await self._get_object(key, etag, start, end)
        async with answer["Body"] as body:
            data: bytes = await body.read()
        return data, answer

    async def _get_object(
        self, key: str, etag: str | None, start: int = 0, end: int | None = None
    ) -> dict[str, Any]:
        """The GET response of `key` (its body unread), only if it is still `etag`."""
        kwargs: dict[str, Any] = {"Key": key}
        if end is not None:
            kwargs["Range"] = f"bytes={start}-{end - 1}"
        elif start:
            kwargs["Range"] = f"bytes={start}-"
        if etag and self.profile.conditional_writes:
            kwargs["IfMatch"] = f'"{etag}"'
        try:
            answer: dict[str, Any] = await self._call("get_object", **kwargs)
        except OSError as exc:
            if _precondition_failed(exc):
                raise ObjectChanged(f"{key} changed since it was scanned") from None
            raise
        # Checked even after If-Match: a store that ignores the header must not slip through.
        if etag and _etag(answer.get("ETag")) != etag:
            raise ObjectChanged(f"{key} changed since it was scanned")
        return answer

    def read_heads(
        self, items: Sequence[tuple[str, str | None, int]]
    ) -> list[bytes | BaseException]:
        """The first `n` bytes of each (key, etag, n), concurrently: one request per object."""

        async def one(item: tuple[str, str | None, int]) -> bytes:
            key, etag, n = item
            return await self._get(key, etag, 0, n)

        return self._run(self._gather, items, one)

    def hash_objects(
        self,
        items: Sequence[tuple[str, str | None, int]],
        on_done: Callable[[int], None] = lambda nbytes: None,
    ) -> list[tuple[bytes, int] | BaseException]:
        """blake3 of the whole content of each (key, etag, size), streamed: one GET each."""

        async def one(item: tuple[str, str | None, int]) -> tuple[bytes, int]:
            key, etag, size = item
            answer = await self._get_object(key, etag)
            hasher = blake3.blake3()
            nbytes = 0
            async with answer["Body"] as body:
                while chunk := await body.read(CHUNK):
                    hasher.update(chunk)
                    nbytes += len(chunk)
            if nbytes != size:
                raise ObjectChanged(f"{key} changed since it was scanned")
            on_done(nbytes)
            return hasher.digest(), nbytes

        return self._run(self._gather, items, one)

    def content_hash(self, key: str, etag: str | None = None) -> bytes:
        """blake3 of one object's content (verification and crash recovery)."""
        info = self.head(key)
        if info is None:
            raise ObjectChanged(f"{key} is gone")
        result = self.hash_objects([(key, etag or info.etag, info.size)])[0]
        if isinstance(result, BaseException):
            raise result
        return result[0]

    # -- writes ---------------------------------------------------------------------------

    def put_if_absent(self, key: str, data: bytes) -> str:
        """Write a new object; ObjectExists if the key is taken. Returns its ETag."""
        return self._run(self._put, key, data, {})

    async def _put(self, key: str, data: bytes, extra: dict[str, Any]) -> str:
        digest = hashlib.md5(data, usedforsecurity=False)
        kwargs: dict[str, Any] = {
            "Key": key,
            "Body": data,
            "ContentMD5": base64.b64encode(digest.digest()).decode(),
            **extra,
        }
        if self.profile.conditional_writes:
            kwargs["IfNoneMatch"] = "*"
        elif await self._head(key) is not None:
            raise ObjectExists(f"{key} exists")
        try:
            answer = await self._call("put_object", **kwargs)
        except FileExistsError:
            raise ObjectExists(f"{key} exists") from None
        return _etag(answer.get("ETag"))

    def copy_if_absent(self, src: ObjectInfo, dst_key: str) -> ObjectInfo:
        """Copy `src` (exactly the scanned version) to a new key and verify the copy.

        Never overwrites `dst_key` (ObjectExists), never copies a source whose ETag changed
        (ObjectChanged). The copy's size and checksum are verified before returning; a copy
        that does not verify is removed again and CopyMismatch raised.
        """
        return self._run(self._copy, src, dst_key)

    async def _copy(self, src: ObjectInfo, dst_key: str) -> ObjectInfo:
        if src.size <= PART_SIZE:
            # One GET (If-Match) brings the bytes and the metadata to copy: no HEAD first.
            try:
                data, meta = await self._get_answer(src.key, src.etag, 0, None)
            except FileNotFoundError:
                raise ObjectChanged(f"{src.key} is gone") from None
            _check_same(src, meta, len(data))
            expected = hashlib.md5(data, usedforsecurity=False).hexdigest()
            source_hash = blake3.blake3(data).digest()
            etag = await self._put(dst_key, data, _copied_metadata(meta))
        else:
            kwargs = {"IfMatch": f'"{src.etag}"'} if self.profile.conditional_writes else {}
            try:
                meta = await self._call("head_object", Key=src.key, **kwargs)
            except FileNotFoundError:
                raise ObjectChanged(f"{src.key} is gone") from None
            except OSError as exc:
                if _precondition_failed(exc):
                    raise ObjectChanged(f"{src.key} changed since it was scanned") from None
                raise
            _check_same(src, meta, int(meta["ContentLength"]))
            etag, expected, source_hash = await self._copy_parts(
                src, dst_key, _copied_metadata(meta)
            )
        await self._verify(dst_key, src.size, etag, expected, source_hash)
        return ObjectInfo(dst_key, src.size, etag, 0)

    async def _copy_parts(
        self, src: ObjectInfo, dst_key: str, extra: dict[str, Any]
    ) -> tuple[str, str, bytes]:
        if not self.profile.conditional_writes and await self._head(dst_key) is not None:
            raise ObjectExists(f"{dst_key} exists")
        upload = await self._call("create_multipart_upload", Key=dst_key, **extra)
        upload_id = upload["UploadId"]
        parts, md5s = [], []
        hasher = blake3.blake3()
        try:
            for number, start in enumerate(range(0, src.size, PART_SIZE), start=1):
                data = await self._get(src.key, src.etag, start, min(start + PART_SIZE, src.size))
                md5 = hashlib.md5(data, usedforsecurity=False)
                hasher.update(data)
                md5s.append(md5.digest())
                answer = await self._call(
                    "upload_part",
                    Key=dst_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    ContentMD5=base64.b64encode(md5.digest()).decode(),
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
            kwargs: dict[str, Any] = {
                "Key": dst_key,
                "UploadId": upload_id,
                "MultipartUpload": {"Parts": parts},
            }
            if self.profile.conditional_writes:
                kwargs["IfNoneMatch"] = "*"
            try:
                answer = await self._call("complete_multipart_upload", **kwargs)
            except FileExistsError:
                raise ObjectExists(f"{dst_key} exists") from None
        except BaseException:
            # If the abort fails too, lifecycle rules expire the upload; nothing was written.
            with contextlib.suppress(Exception):
                await self._call("abort_multipart_upload", Key=dst_key, UploadId=upload_id)
            raise
        combined = hashlib.md5(b"".join(md5s), usedforsecurity=False).hexdigest()
        return _etag(answer.get("ETag")), f"{combined}-{len(md5s)}", hasher.digest()

    async def _verify(
        self, key: str, size: int, etag: str, expected: str, source_hash: bytes
    ) -> None:
        info = await self._head(key)
        ok = info is not None and info.size == size and info.etag == etag
        if ok and etag != expected:
            # Not an MD5 ETag (SSE-KMS and some stores): compare the content itself.
            result = (await self._gather([key], lambda k: self._get(k, etag, 0, None)))[0]
            ok = not isinstance(result, BaseException) and (
                blake3.blake3(result).digest() == source_hash
            )
        if not ok:
            if info is not None and info.etag == etag:
                await self._delete(key, etag)  # our own bad copy, nobody else's object
            raise CopyMismatch(f"copy of {key} did not verify")

    def delete_if_match(self, key: str, etag: str) -> None:
        """Delete `key` only if it is still the object with `etag` (ObjectChanged if not)."""
        self._run(self._delete, key, etag)

    async def _delete(self, key: str, etag: str) -> None:
        if self.profile.conditional_writes:
            try:
                await self._call("delete_object", Key=key, IfMatch=f'"{etag}"')
            except FileNotFoundError:
                raise ObjectChanged(f"{key} is gone") from None
            except OSError as exc:
                if _precondition_failed(exc):
                    raise ObjectChanged(f"{key} changed") from None
                raise
            return
        info = await self._head(key)
        if info is None or info.etag != etag:
            raise ObjectChanged(f"{key} changed")
        await self._call("delete_object", Key=key)
