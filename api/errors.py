"""HTTP errors, translated once: the app registers `install(app)` and nothing else maps errors.

ApiError                      raised by the API's own code, with its status
├── BadRequest (400), Unauthorized (401), Forbidden (403), NotFound (404), Conflict (409)
├── TooManyRequests (429)     carries Retry-After
└── Unavailable (503)
storage.errors.UserError      OperationNotFound -> 404, OperationStateError -> 409, others -> 400
storage.errors.StorageError   503 (the data folder or a manifest cannot be read)
OrchestratorError             503 (Prefect is not reachable or refused)
TokenError                    401
RequestValidationError        422, with every string made encodable (a lone surrogate in a
                              request is echoed back as its `\\udXXX` escape, not a 500) and no
                              secret echoed: an error on a password or token field has no
                              `input`, and a body echoed whole has its secret fields masked
"""

from __future__ import annotations

import logging
import re
from typing import Any

import duckdb
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.orchestrator import OrchestratorError
from api.security import TokenError
from storage.errors import (
    OperationNotFound,
    OperationStateError,
    StorageError,
    UserError,
)

log = logging.getLogger("api")
BEARER = {"WWW-Authenticate": "Bearer"}


class ApiError(Exception):
    status_code = 400

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class BadRequest(ApiError):
    status_code = 400


class Unauthorized(ApiError):
    status_code = 401

    def __init__(self, detail: str = "not authenticated") -> None:
        super().__init__(detail, BEARER)


class Forbidden(ApiError):
    status_code = 403


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class TooManyRequests(ApiError):
    status_code = 429

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, round(retry_after))
        super().__init__("too many attempts; try again later", {"Retry-After": str(seconds)})


class Unavailable(ApiError):
    status_code = 503


def _json(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def encodable(value: Any) -> Any:
    """`value` with every string encodable as UTF-8: lone surrogates become escapes."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {encodable(k): encodable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encodable(v) for v in value]
    return value


# A field whose value is a secret, by its name: password, new_password, refresh_token, api_key...
SECRET_FIELD = re.compile(
    r"pass(word|phrase|wd)|token|secret|api_?key|credential|authorization", re.I
)
MASK = "[hidden]"


def _names_secret(loc: Any) -> bool:
    return any(isinstance(part, str) and SECRET_FIELD.search(part) for part in loc)


def _masked(value: Any) -> Any:
    """`value` with the value of every secret-named key replaced by MASK, at any depth."""
    if isinstance(value, dict):
        return {
            k: MASK if isinstance(k, str) and SECRET_FIELD.search(k) else _masked(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


def without_secrets(errors: Any) -> list[dict[str, Any]]:
    """Validation errors safe to send back: an error located on a secret field (a weak
    password, a malformed token, an unknown `new_password`) loses its `input`; any other input
    has its secret-named keys masked. A whole body that is not an object (a bare string, a
    list) may be a secret under no name, and is not echoed either."""
    safe = []
    for error in errors:
        error = dict(error)
        loc = tuple(error.get("loc", ()))
        if "input" in error:
            whole = len(loc) <= 1 and not isinstance(error["input"], dict)
            if whole or _names_secret(loc):
                del error["input"]
            else:
                error["input"] = _masked(error["input"])
        safe.append(error)
    return safe


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input; a lone surrogate in it cannot be encoded
        # as UTF-8, and the 422 became a 500 before any login (issue 12 #12).
        # It also echoed a weak password back in `input` (a new user's tryout).
        detail = without_secrets(exc.errors())
        return JSONResponse({"detail": encodable(jsonable_encoder(detail))}, 422)

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return _json(exc.status_code, exc.detail, exc.headers)

    @app.exception_handler(TokenError)
    async def _token(_: Request, exc: TokenError) -> JSONResponse:
        return _json(401, str(exc), BEARER)

    @app.exception_handler(UserError)
    async def _user(_: Request, exc: UserError) -> JSONResponse:
        if isinstance(exc, OperationNotFound):
            return _json(404, "operation not found")
        return _json(409 if isinstance(exc, OperationStateError) else 400, str(exc))

    @app.exception_handler(StorageError)
    async def _storage(_: Request, exc: StorageError) -> JSONResponse:
        log.error("storage error: %s", exc, exc_info=exc)
        return _json(503, "the data folder cannot be read; try again later")

    @app.exception_handler(duckdb.Error)
    async def _manifest(_: Request, exc: duckdb.Error) -> JSONResponse:
        log.error("manifest query failed: %s", exc, exc_info=exc)
        return _json(503, "the operation's manifests cannot be read; try again later")

    @app.exception_handler(OrchestratorError)
    async def _orchestrator(_: Request, exc: OrchestratorError) -> JSONResponse:
        log.error("orchestrator: %s", exc)
        return _json(503, f"the orchestrator is unavailable: {exc}")
