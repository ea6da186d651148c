"""ObjectStore: every request the pipeline makes on one object root (the rules are in the
package docstring, storage/objects/__init__.py), and the s3fs filesystem of a profile."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import blake3
from fsspec.asyn import sync

from storage.errors import RootError
from storage.objects import copy
from storage.objects.errors import (
    ObjectChanged,
    ObjectExists,
    describe,
    install_redaction,
    precondition_failed,
)
from storage.objects.urls import ObjectInfo, ObjectRoot, mtime_ns, plain_etag

T = TypeVar("T")

CHUNK = 1024 * 1024  # the read size when hashing a whole object


# Requests made by this process, by S3 operation: the benchmark's requests-per-object figures
# and the tests' "not read again" checks read it. Updated on s3fs's single event-loop thread.
REQUESTS: Counter[str] = Counter()


def filesystem(profile_name: str) -> Any:
    """The s3fs filesystem of a profile (s3fs keeps one instance per set of options).

    Every client is made here, so this is where botocore's logs get their credential filter.
    """
    import s3fs

    from storage.settings import get_profiles

    install_redaction()
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

    async def request(self, method: str, **kwargs: Any) -> Any:
        self.requests += 1
        REQUESTS[method] += 1
        return await self.fs._call_s3(method, Bucket=self.bucket, **kwargs)

    async def gather(
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
            self._run(self.request, "list_objects_v2", Prefix=self.root.key_prefix, MaxKeys=1)
        except Exception as exc:
            raise RootError(describe(exc, f"root {self.root.url}")) from None

    def versioned(self) -> bool:
        try:
            answer = self._run(self.request, "get_bucket_versioning")
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
                    self.request, "list_object_versions", Prefix=self.root.key_prefix, **token
                )
                infos = [
                    ObjectInfo(
                        v["Key"],
                        int(v["Size"]),
                        plain_etag(v.get("ETag")),
                        mtime_ns(v["LastModified"]),
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
                    self.request, "list_objects_v2", Prefix=self.root.key_prefix, **token
                )
                infos = [
                    ObjectInfo(
                        c["Key"],
                        int(c["Size"]),
                        plain_etag(c.get("ETag")),
                        mtime_ns(c["LastModified"]),
                    )
                    for c in page.get("Contents", [])
                ]
                if not page.get("IsTruncated"):
                    yield infos
                    return
                token = {"ContinuationToken": page["NextContinuationToken"]}
            yield infos

    def head(self, key: str) -> ObjectInfo | None:
        return self._run(self.head_async, key)

    async def head_async(self, key: str) -> ObjectInfo | None:
        try:
            answer = await self.request("head_object", Key=key)
        except FileNotFoundError:
            return None
        return ObjectInfo(
            key,
            int(answer["ContentLength"]),
            plain_etag(answer.get("ETag")),
            mtime_ns(answer["LastModified"]),
            answer.get("VersionId"),
        )

    # -- reads ----------------------------------------------------------------------------

    async def get_async(self, key: str, etag: str | None, start: int, end: int | None) -> bytes:
        """Bytes [start, end) of `key` (to the end when `end` is None), if it is still `etag`."""
        if end is not None and end <= start:
            return b""
        return (await self.get_answer(key, etag, start, end))[0]

    async def get_answer(
        self, key: str, etag: str | None, start: int, end: int | None
    ) -> tuple[bytes, dict[str, Any]]:
        """`get_async` with the response's headers (ETag, ContentType, Metadata...)."""
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
            answer: dict[str, Any] = await self.request("get_object", **kwargs)
        except OSError as exc:
            if precondition_failed(exc):
                raise ObjectChanged(f"{key} changed since it was scanned") from None
            raise
        # Checked even after If-Match: a store that ignores the header must not slip through.
        if etag and plain_etag(answer.get("ETag")) != etag:
            raise ObjectChanged(f"{key} changed since it was scanned")
        return answer

    def read_heads(
        self, items: Sequence[tuple[str, str | None, int]]
    ) -> list[bytes | BaseException]:
        """The first `n` bytes of each (key, etag, n), concurrently: one request per object."""

        async def one(item: tuple[str, str | None, int]) -> bytes:
            key, etag, n = item
            return await self.get_async(key, etag, 0, n)

        return self._run(self.gather, items, one)

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

        return self._run(self.gather, items, one)

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
        return self._run(self.put_async, key, data, {})

    async def put_async(self, key: str, data: bytes, extra: dict[str, Any]) -> str:
        digest = hashlib.md5(data, usedforsecurity=False)
        kwargs: dict[str, Any] = {
            "Key": key,
            "Body": data,
            "ContentMD5": base64.b64encode(digest.digest()).decode(),
            **extra,
        }
        if self.profile.conditional_writes:
            kwargs["IfNoneMatch"] = "*"
        elif await self.head_async(key) is not None:
            raise ObjectExists(f"{key} exists")
        try:
            answer = await self.request("put_object", **kwargs)
        except FileExistsError:
            raise ObjectExists(f"{key} exists") from None
        return plain_etag(answer.get("ETag"))

    def copy_if_absent(self, src: ObjectInfo, dst_key: str) -> ObjectInfo:
        """Copy `src` (exactly the scanned version) to a new key and verify the copy.

        Never overwrites `dst_key` (ObjectExists), never copies a source whose ETag changed
        (ObjectChanged). The copy's size and checksum are verified before returning; a copy
        that does not verify is removed again and CopyMismatch raised.
        """
        requests: copy.Requests = self  # mypy checks the store is what a copy needs
        return self._run(copy.copy_if_absent, requests, src, dst_key)

    def delete_if_match(self, key: str, etag: str) -> None:
        """Delete `key` only if it is still the object with `etag` (ObjectChanged if not)."""
        self._run(self.delete_async, key, etag)

    async def delete_async(self, key: str, etag: str) -> None:
        if self.profile.conditional_writes:
            try:
                await self.request("delete_object", Key=key, IfMatch=f'"{etag}"')
            except FileNotFoundError:
                raise ObjectChanged(f"{key} is gone") from None
            except OSError as exc:
                if precondition_failed(exc):
                    raise ObjectChanged(f"{key} changed") from None
                raise
            return
        info = await self.head_async(key)
        if info is None or info.etag != etag:
            raise ObjectChanged(f"{key} changed")
        await self.request("delete_object", Key=key)
