"""The errors of object requests, and what a user reads of them.

    StorageError (storage.errors)
    ├── ObjectExists     the destination key exists: nothing was written
    ├── ObjectChanged    the object is not the one expected (ETag differs, or gone)
    └── CopyMismatch     a copy was written but does not verify against its source

Credentials never reach a log: `install_redaction()` filters botocore's DEBUG lines. It is
installed by `store.filesystem()`, the one way to a client, not when this module is imported.
"""

from __future__ import annotations

import logging
import re

from storage.errors import StorageError


class ObjectExists(StorageError):
    """The destination key exists: nothing was written."""


class ObjectChanged(StorageError):
    """The object is not the one expected (its ETag differs, or it is gone)."""


class CopyMismatch(StorageError):
    """A copy was written but does not verify against its source."""


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


REDACT = _RedactCredentials()
REDACTED_LOGGERS = ("botocore.endpoint", "botocore.auth")


def install_redaction() -> None:
    """Filter credentials out of botocore's request logs (adding the filter twice is a no-op)."""
    for name in REDACTED_LOGGERS:
        logging.getLogger(name).addFilter(REDACT)


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
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    if isinstance(exc, EndpointConnectionError) or isinstance(
        exc.__cause__, EndpointConnectionError
    ):
        return f"{what}: the store cannot be reached (check the profile's endpoint)"
    if isinstance(exc, NoCredentialsError) or isinstance(exc.__cause__, NoCredentialsError):
        # botocore's own words ("Unable to locate credentials") name neither the profile nor
        # where credentials come from
        return (
            f"{what}: no credentials for its storage profile (give the profile a key and"
            " secret, or set them where AWS tools look: the environment, ~/.aws)"
        )
    if isinstance(exc, FileNotFoundError):
        return f"{what}: not found"
    if isinstance(exc, PermissionError):
        return f"{what}: access denied (check the storage profile's credentials)"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{what}: {code + ': ' if code else ''}{text}"[:300]


def precondition_failed(exc: BaseException) -> bool:
    # GET/DELETE answer with an error document; HEAD has no body, only the status.
    return error_code(exc) in ("PreconditionFailed", "412")
