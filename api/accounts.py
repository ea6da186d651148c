"""Accounts and tokens: sign up, log in, rotate refresh tokens, log out, create users.

Refresh tokens form families (one per login). Each refresh marks the presented token used and
issues the next of its family; a used token presented again means it was stolen or replayed,
so the whole family is revoked and both holders must log in again. Access tokens name their
family too: a revoked family (logout, reuse) ends them at once, not at their expiry
(api.deps.current_user checks it on every request and WebSocket).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api import security
from api.config import Settings
from api.errors import Conflict, Forbidden, Unauthorized
from api.models import FirstAdmin, RefreshToken, User
from api.ratelimit import Attempts
from api.schemas import LoginRequest, SignupRequest, TokenPair
from api.security import Passwords
from storage.operations import utcnow

BAD_LOGIN = "incorrect username or password"
BAD_REFRESH = "invalid or expired refresh token"


async def create_user(
    session: AsyncSession,
    passwords: Passwords,
    body: SignupRequest,
    is_admin: bool,
    first_is_admin: bool = False,
) -> User:
    """Create an account; Conflict (without saying which) if the email or username is taken.

    The first account of an empty database takes the first-admin claim (api.models.FirstAdmin)
    and is the admin when `first_is_admin`; of accounts created at once on an empty database,
    only the one whose claim commits is: the others are created with `is_admin`.
    """
    hashed = await passwords.hash(body.password)
    if await _no_users(session):
        user = await _insert(session, body, hashed, is_admin or first_is_admin, claim=True)
        if user is not None:
            return user
    user = await _insert(session, body, hashed, is_admin, claim=False)
    if user is None:
        # Neither which field clashed nor that an account exists: just that these cannot be used.
        raise Conflict("this email or username cannot be used")
    return user


async def _no_users(session: AsyncSession) -> bool:
    return await session.scalar(select(User.id).limit(1)) is None


async def _insert(
    session: AsyncSession, body: SignupRequest, hashed: str, is_admin: bool, claim: bool
) -> User | None:
    """The new account, or None when its email, username or the claim was taken."""
    user = User(
        id=uuid.uuid4(),
        email=body.email,
        username=body.username,
        full_name=body.full_name,
        hashed_password=hashed,
        is_admin=is_admin,
        is_active=True,
    )
    try:
        session.add(user)
        if claim:
            await session.flush()  # the account first: the claim refers to it
            session.add(FirstAdmin(id=1, user_id=user.id))
        await session.commit()
    except IntegrityError:
        await session.rollback()
        return None
    return user


@dataclass
class Accounts:
    """What the auth routes do, with what they need (api.deps.AccountsDep)."""

    session: AsyncSession
    passwords: Passwords
    settings: Settings
    secret: str
    attempts: Attempts

    async def signup(self, body: SignupRequest) -> TokenPair:
        settings = self.settings
        self.attempts.count(
            f"signup:address:{self.attempts.address}",
            settings.signup_attempts_per_address,
            settings.signup_window_seconds,
        )
        self.attempts.count(
            f"signup:account:{body.email.lower()}",
            settings.auth_attempts_per_account,
            settings.auth_window_seconds,
        )
        if not settings.signup_open:
            raise Forbidden("signup is closed; ask an admin for an account")
        user = await create_user(
            self.session,
            self.passwords,
            body,
            is_admin=False,
            first_is_admin=settings.first_user_admin,
        )
        return await self.issue_pair(user)

    async def login(self, credentials: LoginRequest) -> TokenPair:
        settings, window = self.settings, self.settings.auth_window_seconds
        address = self.attempts.address
        self.attempts.count(f"login:address:{address}", settings.auth_attempts_per_address, window)
        identifier = credentials.username
        user = await self.session.scalar(
            select(User).where(or_(User.username == identifier, User.email == identifier.lower()))
        )
        # One count per account, whether it is named by username or by email (issue 12 #15); a
        # name that is no account is counted as typed.
        account = str(user.id) if user is not None else identifier.lower()
        self.attempts.count(f"login:account:{account}", settings.auth_attempts_per_account, window)
        hashed = user.hashed_password if user else None
        valid = await self.passwords.verify(credentials.password, hashed)
        if user is None or not valid or not user.is_active:
            raise Unauthorized(BAD_LOGIN)
        return await self.issue_pair(user)

    async def issue_pair(self, user: User, family: str | None = None) -> TokenPair:
        subject, secret = str(user.id), self.secret
        access_lifetime = timedelta(minutes=self.settings.access_token_minutes)
        family = family or secrets.token_hex(16)
        # The access token names its login (family), so that logging out revokes it too.
        access = security.issue(secret, subject, "access", access_lifetime, {"fam": family})
        refresh = security.issue(
            secret,
            subject,
            "refresh",
            timedelta(days=self.settings.refresh_token_days),
            {"fam": family},
        )
        self.session.add(
            RefreshToken(
                jti=refresh.jti,
                family_id=family,
                user_id=user.id,
                token_hash=security.digest(refresh.token),
                expires_at=refresh.expires_at,
            )
        )
        await self.session.commit()
        return TokenPair(
            access_token=access.token,
            refresh_token=refresh.token,
            expires_in=int(access_lifetime.total_seconds()),
        )

    async def _presented(self, token: str) -> RefreshToken:
        claims = security.decode(self.secret, token, "refresh")
        row = await self.session.get(RefreshToken, claims["jti"])
        if row is None or row.token_hash != security.digest(token):
            raise Unauthorized(BAD_REFRESH)
        if str(row.user_id) != claims["sub"]:
            raise Unauthorized(BAD_REFRESH)
        return row

    async def revoke_family(self, family: str) -> None:
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        await self.session.commit()

    async def rotate(self, token: str) -> TokenPair:
        session = self.session
        row = await self._presented(token)
        if row.revoked_at is not None:
            raise Unauthorized(BAD_REFRESH)
        jti, family, user_id = row.jti, row.family_id, row.user_id  # a rollback expires `row`
        # Mark it used only if nobody did first: two refreshes racing with one token are a reuse.
        marked = await session.execute(
            update(RefreshToken)
            .where(RefreshToken.jti == jti, RefreshToken.used_at.is_(None))
            .values(used_at=utcnow())
        )
        if getattr(marked, "rowcount", 0) != 1:
            await session.rollback()
            await self.revoke_family(family)
            raise Unauthorized(
                "refresh token reuse detected; every session of this login is revoked"
            )
        user = await session.get(User, user_id)
        if user is None or not user.is_active:
            await session.rollback()
            raise Unauthorized(BAD_REFRESH)
        return await self.issue_pair(user, family)

    async def logout(self, token: str) -> None:
        row = await self._presented(token)
        await self.revoke_family(row.family_id)
