"""Accounts, tokens, users and their granted roots."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from api.password_policy import password_problem
from api.schemas.strict import EMAIL_PATTERN, MAX_PATH, USERNAME_PATTERN, Strict


class SignupRequest(Strict):
    email: str = Field(max_length=320, pattern=EMAIL_PATTERN)
    username: str = Field(min_length=3, max_length=64, pattern=USERNAME_PATTERN)
    password: str = Field(min_length=8, max_length=256, description="See docs/security.md")
    full_name: str | None = Field(default=None, max_length=200)

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("password")
    @classmethod
    def _policy(cls, value: str, info: ValidationInfo) -> str:
        problem = password_problem(value, info.data.get("username", ""), info.data.get("email", ""))
        if problem is not None:
            raise PydanticCustomError("password_policy", problem)
        return value


class LoginRequest(Strict):
    username: str = Field(min_length=1, max_length=320, description="Username or email")
    password: str = Field(min_length=1, max_length=256)


class RefreshRequest(Strict):
    refresh_token: str = Field(min_length=1, max_length=4096)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires")


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    username: str
    full_name: str | None
    is_admin: bool
    created_at: datetime
    roots: list[str] = Field(default_factory=list)


class UsersPublic(BaseModel):
    data: list[UserPublic]
    count: int


class RootGrantCreate(Strict):
    root: str = Field(min_length=1, max_length=MAX_PATH)


class RootGrantPublic(BaseModel):
    id: uuid.UUID
    root: str
    created_at: datetime


class RootGrantsPublic(BaseModel):
    data: list[RootGrantPublic]
    count: int
