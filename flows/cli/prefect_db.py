"""A migrated, empty Prefect database for each Prefect version, kept in the user's cache and
copied into a new Prefect home before its server first starts.

Migrating a new SQLite database is most of a server's first start (about 9 s of 17 on a quiet
2-core machine), and it is the same work for every new home: a new data folder's background
server, `fileorg serve` with a PREFECT_HOME of its own. The copy is made only where the home has
no database yet and the server would use the default SQLite file: a database named by
PREFECT_SERVER_DATABASE_CONNECTION_URL (PostgreSQL, or a file elsewhere) is never touched. The
template holds the schema alone (it is migrated by itself, not copied from a live server), so
no runs, events or logs of one home can reach another. A template of an older Prefect is never
used (the name holds the version); the server migrates what it is given anyway, so a template
behind its own version would still be upgraded, not misread.

Migrating takes 9-12 s of one core, and a new user's first run would pay it: so the locked
Prefect version's migrated schema is shipped beside this module (schemas/prefect-VERSION.sql,
an SQL dump of the empty migrated database), and a template is built from it in milliseconds.
tests/flows/test_prefect_db.py fails when the dump is not what migrating gives (a Prefect
upgrade in uv.lock): `python -m flows.cli.prefect_db` writes the new one. Any other Prefect
version (an install that resolved its own) has no dump and migrates, as before.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Mapping
from pathlib import Path

TEMPLATE_VARIABLE = "FILEORG_PREFECT_TEMPLATE"  # handed to the background server's process
CUSTOM_DATABASE = ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL")


SCHEMAS = Path(__file__).with_name("schemas")


def _prefect_version() -> str:
    from importlib.metadata import version  # not `import prefect`: the CLI may not need it

    return version("prefect")


def template_path(env: Mapping[str, str]) -> Path:
    """Where this Prefect version's template lives: FILEORG_CACHE_DIR, else the XDG cache."""
    folder = env.get("FILEORG_CACHE_DIR") or ""
    if not folder:
        xdg = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
        folder = str(Path(xdg) / "fileorg")
    return Path(folder) / f"prefect-{_prefect_version()}.db"


def shipped_schema() -> Path:
    """The dump of this Prefect version's migrated database (it may not exist)."""
    return SCHEMAS / f"prefect-{_prefect_version()}.sql"


def _wants_copy(home: Path, env: Mapping[str, str]) -> bool:
    """The server will use `home`/prefect.db, and the home has no database of its own yet
    (not even a WAL or journal left of one, maybe live: never replaced)."""
    if any(env.get(name) for name in CUSTOM_DATABASE):
        return False
    database = home / "prefect.db"
    return not any(Path(f"{database}{end}").exists() for end in ("", "-wal", "-journal"))


def seed(home: Path, template: Path, env: Mapping[str, str]) -> bool:
    """Copy `template` to `home`/prefect.db when the home wants one; True when copied."""
    database = home / "prefect.db"
    if not template.is_file() or not _wants_copy(home, env):
        return False
    home.mkdir(parents=True, exist_ok=True)
    partial = home / f".prefect.db.{os.getpid()}.partial"
    try:
        shutil.copyfile(template, partial)
        os.chmod(partial, 0o600)
        os.link(partial, database)  # fails, changing nothing, if a database appeared meanwhile
    except FileExistsError:
        return False
    finally:
        partial.unlink(missing_ok=True)
    return True


def build(template: Path, schema: Path | None = None) -> Path:
    """Make `template` if it is missing: from the shipped dump of its schema when there is
    one, else by migrating a new database by itself; then write it as one self-contained file
    (no WAL beside it) under its final name in one rename. Two processes building at once
    each write their own and the last rename wins: both are the same schema."""
    if template.is_file():
        return template
    schema = shipped_schema() if schema is None else schema
    template.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    work = template.parent / f".{template.name}.{os.getpid()}"
    work.mkdir(exist_ok=True)
    try:
        packed = work / "packed.db"
        if schema.is_file():
            with sqlite3.connect(packed) as connection:
                connection.executescript(schema.read_text(encoding="utf-8"))
            connection.close()
        else:
            migrate(work / "migrated.db", packed)
        os.chmod(packed, 0o600)
        os.replace(packed, template)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return template


def migrate(migrated: Path, packed: Path) -> None:
    """Migrate a new database at `migrated` with this process's Prefect, register Prefect's
    own blocks in it, and write it whole, without a WAL, to `packed`."""
    import asyncio

    from prefect.server.database.configurations import AioSqliteConfiguration
    from prefect.server.database.dependencies import (
        provide_database_interface,
        temporary_database_config,
    )
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL, temporary_settings

    url = f"sqlite+aiosqlite:///{migrated}"
    config = AioSqliteConfiguration(connection_url=url)

    async def run() -> None:
        from prefect.server.models.block_registration import run_block_auto_registration

        database = provide_database_interface()
        await database.create_db()
        # The block catalog too, which a server registers on its first start (~1.6 s): the
        # same rows for every home of this Prefect (see BLOCKS_KNOWN).
        async with await database.session() as session:
            await run_block_auto_registration(session=session)
        await (await config.engine()).dispose()

    # Prefect keeps the first database configuration it makes for the whole process: made
    # here for the template, it would be the server's own afterwards. So it is lent, and the
    # process's own (none yet, or the one it had) is back when the migration ends.
    with (
        temporary_settings({PREFECT_SERVER_DATABASE_CONNECTION_URL: url}),
        temporary_database_config(config),
    ):
        asyncio.run(run())
    with sqlite3.connect(migrated) as connection:
        connection.execute("VACUUM INTO ?", (str(packed),))
    connection.close()


def dump(database: Path) -> str:
    """An SQL script that makes `database` again (what schemas/ holds)."""
    with sqlite3.connect(database) as connection:
        text = "\n".join(connection.iterdump()) + "\n"
    connection.close()
    return text


def blocks_registered(database: Path) -> bool:
    """`database` holds Prefect's block catalog (a template of this module's: the blocks this
    Prefect registers), and nothing installed adds blocks of its own, which a template made
    elsewhere might lack (a Prefect collection): a server starting on it need not register
    them again. Prefect then notes them as registered (memo_store.toml), which they are."""
    from importlib.metadata import entry_points

    if entry_points(group="prefect.collections"):
        return False
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            (count,) = connection.execute("select count(*) from block_type").fetchone()
        connection.close()
    except sqlite3.Error:
        return False
    return bool(count)


def prepare(home: Path, env: Mapping[str, str]) -> bool:
    """In the server's own process, before its app starts: the template built if missing,
    then copied into `home`; True when the home was seeded. Any failure leaves the server to
    migrate its database itself, as it always could."""
    named = env.get(TEMPLATE_VARIABLE)
    if not named or not _wants_copy(home, env):
        return False  # before the build: no migration for a home that will not take it
    try:
        return seed(home, build(Path(named)), env)
    except Exception:  # a shortcut only: whatever stops it, the server migrates by itself
        return False


def write_schema() -> Path:
    """Migrate a new database with the installed Prefect and write its dump to schemas/."""
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        migrated, packed = Path(work) / "migrated.db", Path(work) / "packed.db"
        migrate(migrated, packed)
        target = shipped_schema()
        target.parent.mkdir(exist_ok=True)
        target.write_text(dump(packed), encoding="utf-8")
    return target


if __name__ == "__main__":  # python -m flows.cli.prefect_db: after a Prefect upgrade in uv.lock
    print(write_schema())
