"""Copying one object to a new key without ever overwriting it, then verifying the copy.

Up to PART_SIZE: one GET (If-Match the scanned ETag) brings the bytes and the metadata, one
conditional PUT writes them. Bigger: a HEAD (If-Match), then the parts, completed with
If-None-Match. Either way the copy's size and checksum are checked before it counts; a copy that
does not verify is deleted again (only if it is still our own write) and CopyMismatch raised.

These coroutines are the copy half of `ObjectStore` (it calls them from `copy_if_absent`). They
need only its request primitives, named by the `Requests` protocol below, so this module does not
import the store (which imports it).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import blake3

from storage.objects.errors import CopyMismatch, ObjectChanged, ObjectExists, precondition_failed
from storage.objects.urls import ObjectInfo, plain_etag

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from storage.profiles import StorageProfile

T = TypeVar("T")


class Requests(Protocol):
    """The async request primitives of ObjectStore that a copy is made of."""

    profile: StorageProfile

    async def request(self, method: str, **kwargs: Any) -> Any: ...

    async def gather(
        self, items: Sequence[Any], fn: Callable[[Any], Awaitable[T]]
    ) -> list[T | BaseException]: ...

    async def head_async(self, key: str) -> ObjectInfo | None: ...

    async def get_async(self, key: str, etag: str | None, start: int, end: int | None) -> bytes: ...

    async def get_answer(
        self, key: str, etag: str | None, start: int, end: int | None
    ) -> tuple[bytes, dict[str, Any]]: ...

    async def put_async(self, key: str, data: bytes, extra: dict[str, Any]) -> str: ...

    async def delete_async(self, key: str, etag: str) -> None: ...


# Objects up to this size are copied with one GET and one conditional PUT; bigger ones in
# parts of this size (multipart, conditional on completion).
PART_SIZE = 64 * 1024 * 1024

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


def _check_same(src: ObjectInfo, answer: dict[str, Any], size: int) -> None:
    if plain_etag(answer.get("ETag")) != src.etag or size != src.size:
        raise ObjectChanged(f"{src.key} changed since it was scanned")


def _copied_metadata(answer: dict[str, Any]) -> dict[str, Any]:
    """What a copy keeps of its source: user metadata, content headers, storage class."""
    extra: dict[str, Any] = {"Metadata": answer.get("Metadata", {})}
    for name in _KEPT_HEADERS:
        if answer.get(name):
            extra[name] = answer[name]
    return extra


async def copy_if_absent(store: Requests, src: ObjectInfo, dst_key: str) -> ObjectInfo:
    """The coroutine behind `ObjectStore.copy_if_absent` (see there for the guarantees)."""
    if src.size <= PART_SIZE:
        # One GET (If-Match) brings the bytes and the metadata to copy: no HEAD first.
        try:
            data, meta = await store.get_answer(src.key, src.etag, 0, None)
        except FileNotFoundError:
            raise ObjectChanged(f"{src.key} is gone") from None
        _check_same(src, meta, len(data))
        expected = hashlib.md5(data, usedforsecurity=False).hexdigest()
        source_hash = blake3.blake3(data).digest()
        etag = await store.put_async(dst_key, data, _copied_metadata(meta))
    else:
        meta = await _head_source(store, src)
        etag, expected, source_hash = await _copy_parts(store, src, dst_key, _copied_metadata(meta))
    await _verify(store, dst_key, src.size, etag, expected, source_hash)
    return ObjectInfo(dst_key, src.size, etag, 0)


async def _head_source(store: Requests, src: ObjectInfo) -> dict[str, Any]:
    kwargs = {"IfMatch": f'"{src.etag}"'} if store.profile.conditional_writes else {}
    try:
        meta: dict[str, Any] = await store.request("head_object", Key=src.key, **kwargs)
    except FileNotFoundError:
        raise ObjectChanged(f"{src.key} is gone") from None
    except OSError as exc:
        if precondition_failed(exc):
            raise ObjectChanged(f"{src.key} changed since it was scanned") from None
        raise
    _check_same(src, meta, int(meta["ContentLength"]))
    return meta


async def _copy_parts(
    store: Requests, src: ObjectInfo, dst_key: str, extra: dict[str, Any]
) -> tuple[str, str, bytes]:
    conditional = store.profile.conditional_writes
    if not conditional and await store.head_async(dst_key) is not None:
        raise ObjectExists(f"{dst_key} exists")
    upload = await store.request("create_multipart_upload", Key=dst_key, **extra)
    upload_id = upload["UploadId"]
    parts, md5s = [], []
    hasher = blake3.blake3()
    try:
        for number, start in enumerate(range(0, src.size, PART_SIZE), start=1):
            data = await store.get_async(src.key, src.etag, start, min(start + PART_SIZE, src.size))
            md5 = hashlib.md5(data, usedforsecurity=False)
            hasher.update(data)
            md5s.append(md5.digest())
            answer = await store.request(
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
        if conditional:
            kwargs["IfNoneMatch"] = "*"
        try:
            answer = await store.request("complete_multipart_upload", **kwargs)
        except FileExistsError:
            raise ObjectExists(f"{dst_key} exists") from None
    except BaseException:
        # If the abort fails too, lifecycle rules expire the upload; nothing was written.
        with contextlib.suppress(Exception):
            await store.request("abort_multipart_upload", Key=dst_key, UploadId=upload_id)
        raise
    combined = hashlib.md5(b"".join(md5s), usedforsecurity=False).hexdigest()
    return plain_etag(answer.get("ETag")), f"{combined}-{len(md5s)}", hasher.digest()


async def _verify(
    store: Requests, key: str, size: int, etag: str, expected: str, source_hash: bytes
) -> None:
    info = await store.head_async(key)
    ok = info is not None and info.size == size and info.etag == etag
    if ok and etag != expected:
        # Not an MD5 ETag (SSE-KMS and some stores): compare the content itself.
        result = (await store.gather([key], lambda k: store.get_async(k, etag, 0, None)))[0]
        ok = not isinstance(result, BaseException) and (
            blake3.blake3(result).digest() == source_hash
        )
    if not ok:
        if info is not None and info.etag == etag:
            await store.delete_async(key, etag)  # our own bad copy, nobody else's object
        raise CopyMismatch(f"copy of {key} did not verify")
