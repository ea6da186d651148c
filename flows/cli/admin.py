"""Operator commands for the API: `fileorg users create` and `fileorg db upgrade`.

They read the API's settings (DATABASE_URL, FILEORG_*) like the service does.
"""

from __future__ import annotations

import typer

from flows.cli import app
from storage.errors import UserError

users = typer.Typer(help="API accounts.", no_args_is_help=True)
database = typer.Typer(help="The API's database.", no_args_is_help=True)
app.add_typer(users, name="users")
app.add_typer(database, name="db")


@database.command("upgrade")
def db_upgrade() -> None:
    """Apply the API's migrations (the API also applies them when it starts)."""
    from api import db
    from api.config import get_settings

    url = get_settings().resolved_database_url()
    db.upgrade(url)
    typer.echo(f"database at head: {db.sync_url(url).render_as_string(hide_password=True)}")


@users.command("create")
def create_user(
    username: str = typer.Option(..., help="Login name."),
    email: str = typer.Option(..., help="Email address."),
    password: str = typer.Option(
        ..., prompt=True, hide_input=True, confirmation_prompt=True, help="At least 8 characters."
    ),
    full_name: str | None = typer.Option(None, help="Shown name."),
    admin: bool = typer.Option(False, "--admin", help="Make an admin (grants roots)."),
) -> None:
    """Create an account; `--admin` makes an admin."""
    from pydantic import ValidationError

    from api.schemas import SignupRequest

    try:
        body = SignupRequest(email=email, username=username, password=password, full_name=full_name)
    except ValidationError as exc:
        raise UserError(f"invalid account: {exc.errors()[0]['msg']}") from None
    import asyncio

    user_id = asyncio.run(_create(body, admin))
    typer.echo(f"created {'admin' if admin else 'user'} {username} ({user_id})")


async def _create(body: object, admin: bool) -> str:
    from api import accounts, db
    from api.config import get_settings
    from api.errors import ApiError
    from api.schemas import SignupRequest
    from api.security import Passwords

    assert isinstance(body, SignupRequest)
    settings = get_settings()
    url = settings.resolved_database_url()
    db.upgrade(url)
    engine = db.create_engine(url)
    try:
        passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)
        async with db.sessionmaker(engine)() as session:
            user = await accounts.create_user(session, passwords, body, is_admin=admin)
            return str(user.id)
    except ApiError as exc:
        raise UserError(exc.detail) from None
    finally:
        await engine.dispose()
