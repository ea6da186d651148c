"""/api/v1/auth: sign up, log in (JSON or the OAuth2 password form), refresh, log out, me."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.deps import AccountsDep, ReaderDep
from api.routes import errors
from api.schemas import LoginRequest, RefreshRequest, SignupRequest, TokenPair, UserPublic

router = APIRouter(prefix="/auth", tags=["auth"])

FORM = "application/x-www-form-urlencoded"
LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/LoginRequest"}},
            FORM: {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["password"]},
                        "username": {"type": "string", "minLength": 1, "maxLength": 320},
                        "password": {"type": "string", "minLength": 1, "maxLength": 256},
                        "scope": {"type": "string"},
                    },
                }
            },
        },
    }
}


async def credentials(request: Request) -> LoginRequest:
    """The login body, as JSON or as the OAuth2 password form Swagger's Authorize sends."""
    try:
        if request.headers.get("content-type", "").startswith(FORM):
            form = await request.form()
            fields = {k: form.get(k) for k in ("username", "password")}
            return LoginRequest.model_validate(fields)
        return LoginRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    responses=errors(403, 409, 429),
)
async def signup(body: SignupRequest, accounts: AccountsDep) -> TokenPair:
    return await accounts.signup(body)


@router.post("/login", openapi_extra=LOGIN_BODY, responses=errors(401, 429))
async def login(
    body: Annotated[LoginRequest, Depends(credentials)], accounts: AccountsDep
) -> TokenPair:
    return await accounts.login(body)


@router.post("/refresh", responses=errors(401))
async def refresh(body: RefreshRequest, accounts: AccountsDep) -> TokenPair:
    return await accounts.rotate(body.refresh_token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401))
async def logout(body: RefreshRequest, accounts: AccountsDep) -> None:
    await accounts.logout(body.refresh_token)


@router.get("/me", responses=errors(401), response_model=UserPublic)
async def me(reader: ReaderDep) -> Response:
    return await reader.me()
