"""Kept reads answered before routing: a GET whose answer api.read_cache keeps for its user is
sent as it is, without FastAPI's routing, dependencies or exception layers (about half of what
such a request cost through them).

Only what the routes already answered is sent, for the same path and query string as sent, to
a token that checks (signature, expiry: api.security.AccessTokens) of a login the cache holds as
signed in, in the same generation of the database. Anything else (no or a bad token, a miss,
an error, changes elsewhere unseen) goes on to the app, which answers as it always did. Inside
the CORS layer (api.main), so its headers are the same either way.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import access_subject
from api.errors import Unauthorized
from api.read_cache import answer_key, identity_key
from api.security import TokenError

PATHS = ("/api/v1/operations", "/api/v1/auth/me")
JSON = b"application/json"


def bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token if scheme.lower() == "bearer" and token else None
    return None


def kept(scope: Scope) -> bytes | None:
    state = scope["app"].state
    memo = getattr(state, "reads", None)
    token = bearer(scope)
    if memo is None or token is None:
        return None
    try:
        user_id, family = access_subject(state.tokens.decode(token))
    except (TokenError, Unauthorized):
        return None
    if memo.peek(identity_key(user_id, family)) is not True:
        return None
    found = memo.peek(answer_key(user_id, scope["path"], scope["query_string"]))
    return found if isinstance(found, bytes) else None


class FastReads:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"].startswith(PATHS):
            body = kept(scope)
            if body is not None:
                headers = [(b"content-length", str(len(body)).encode()), (b"content-type", JSON)]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
