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

The package, by concern: urls.py (roots and what names an object), errors.py (the error tree,
the user's line, credential redaction), store.py (ObjectStore and the s3fs filesystem),
copy.py (copy without overwrite, then verify). Import from here.
"""

from storage.objects.errors import (
    CopyMismatch,
    ObjectChanged,
    ObjectExists,
    describe,
    error_code,
)
from storage.objects.store import REQUESTS, ObjectStore, filesystem
from storage.objects.urls import ObjectInfo, ObjectRoot, is_object_url, parse_object_url

__all__ = [
    "REQUESTS",
    "CopyMismatch",
    "ObjectChanged",
    "ObjectExists",
    "ObjectInfo",
    "ObjectRoot",
    "ObjectStore",
    "describe",
    "error_code",
    "filesystem",
    "is_object_url",
    "parse_object_url",
]
