"""Passwords (Argon2id, hashed off the event loop) and tokens (PyJWT, HS256 pinned).

Every token carries exp, iat, sub, jti and type; decoding requires all of them, accepts only
the pinned algorithm (so `alg: none` and algorithm swaps fail) and checks the type, so a refresh
token is never taken for an access token or the other way round.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from starlette.concurrency import run_in_threadpool

from storage.operations import utcnow

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("exp", "iat", "sub", "jti", "type")
TokenType = Literal["access", "refresh"]


class TokenError(Exception):
    """A token that cannot be trusted; the message never says more than that."""


class Passwords:
    def __init__(self, time_cost: int, memory_kib: int) -> None:
        self._hash = PasswordHash((Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib),))
        # Verified when the account does not exist, so that a miss costs what a hit costs.
        self._dummy = self._hash.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await run_in_threadpool(self._hash.hash, password)

    async def verify(self, password: str, hashed: str | None) -> bool:
        if hashed is None:
            await run_in_threadpool(self._hash.verify, password, self._dummy)
            return False
        return await run_in_threadpool(self._hash.verify, password, hashed)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: datetime


def issue(
    secret: str,
    subject: str,
    token_type: TokenType,
    lifetime: timedelta,
    extra: dict[str, Any] | None = None,
) -> IssuedToken:
    now = utcnow()
    jti = secrets.token_hex(16)
    claims = {
        **(extra or {}),
        "sub": subject,
        "type": token_type,
        "jti": jti,
        "iat": now,
        "exp": now + lifetime,
    }
    return IssuedToken(jwt.encode(claims, secret, algorithm=ALGORITHM), jti, now + lifetime)


def decode(secret: str, token: str, expected_type: TokenType) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": list(REQUIRED_CLAIMS)}
        )
    except jwt.PyJWTError as exc:
        raise TokenError("invalid or expired token") from exc
    if claims.get("type") != expected_type:
        raise TokenError("invalid or expired token")
    if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("jti"), str):
        raise TokenError("invalid or expired token")
    return claims


class AccessTokens:
    """Access tokens already decoded (api.deps.reader): a token is the same string, so the same
    verdict, until it expires; only its expiry is checked again. Bounded: the oldest go first."""

    def __init__(self, secret: str, size: int = 10_000) -> None:
        self._secret = secret
        self._size = size
        self._claims: dict[str, dict[str, Any]] = {}

    def decode(self, token: str) -> dict[str, Any]:
        claims = self._claims.get(token)
        if claims is not None and time.time() < claims["exp"]:  # PyJWT's own rule, leeway 0
            return claims
        self._claims.pop(token, None)
        claims = decode(self._secret, token, "access")
        if len(self._claims) >= self._size:
            del self._claims[next(iter(self._claims))]
        self._claims[token] = claims
        return claims


def digest(token: str) -> str:
    """Refresh tokens are stored as this hash only: a database leak hands out no live token."""
    return hashlib.sha256(token.encode()).hexdigest()
