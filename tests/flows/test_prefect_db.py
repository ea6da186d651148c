"""flows/cli/prefect_db.py: the migrated Prefect database copied into new homes, never over a
database a home already has, never where another database is named."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from flows.cli import prefect_db


def _revision(database: Path) -> str:
    with sqlite3.connect(database) as connection:
        (revision,) = connection.execute("select version_num from alembic_version").fetchone()
    connection.close()
    return str(revision)


def test_the_template_is_a_migrated_database_of_one_file(prefect_template: Path) -> None:
    assert prefect_template.name.startswith("prefect-") and prefect_template.is_file()
    assert not Path(f"{prefect_template}-wal").exists()
    assert _revision(prefect_template)
    with sqlite3.connect(prefect_template) as connection:
        runs = connection.execute("select count(*) from flow_run").fetchone()[0]
        deployments = connection.execute("select count(*) from deployment").fetchone()[0]
    connection.close()
    assert runs == deployments == 0  # the schema alone, nothing of any server


def test_a_new_home_is_seeded_and_an_existing_database_is_kept(
    prefect_template: Path, tmp_path: Path
) -> None:
    new = tmp_path / "new"
    assert prefect_db.seed(new, prefect_template, {})
    assert _revision(new / "prefect.db") == _revision(prefect_template)
    assert (new / "prefect.db").stat().st_mode & 0o777 == 0o600
    assert list(new.iterdir()) == [new / "prefect.db"]  # no partial copy left

    used = tmp_path / "used"
    used.mkdir()
    (used / "prefect.db").write_bytes(b"a home's own runs")
    assert not prefect_db.seed(used, prefect_template, {})
    assert (used / "prefect.db").read_bytes() == b"a home's own runs"

    live = tmp_path / "live"  # a database whose file is not there, but its WAL is
    live.mkdir()
    (live / "prefect.db-wal").write_bytes(b"")
    assert not prefect_db.seed(live, prefect_template, {})
    assert not (live / "prefect.db").exists()


def test_no_copy_where_another_database_is_named_or_there_is_no_template(
    prefect_template: Path, tmp_path: Path
) -> None:
    url = {"PREFECT_SERVER_DATABASE_CONNECTION_URL": "postgresql+asyncpg://x/y"}
    assert not prefect_db.seed(tmp_path / "a", prefect_template, url)
    assert not prefect_db.seed(tmp_path / "b", tmp_path / "missing.db", {})
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    named = {prefect_db.TEMPLATE_VARIABLE: str(prefect_template), **url}
    assert not prefect_db.prepare(tmp_path / "c", named)


def test_the_template_is_named_by_the_cache_folder_and_prefects_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    name = f"prefect-{version('prefect')}.db"
    assert prefect_db.template_path({"FILEORG_CACHE_DIR": str(tmp_path)}) == tmp_path / name
    xdg = {"XDG_CACHE_HOME": str(tmp_path / "x"), "HOME": "/nowhere"}
    assert prefect_db.template_path(xdg) == tmp_path / "x" / "fileorg" / name
    home = {"HOME": str(tmp_path / "h")}
    assert prefect_db.template_path(home) == tmp_path / "h" / ".cache" / "fileorg" / name


def test_prepare_builds_a_missing_template_then_seeds(tmp_path: Path) -> None:
    template = tmp_path / "cache" / "prefect-test.db"
    home = tmp_path / "home"
    assert prefect_db.prepare(home, {prefect_db.TEMPLATE_VARIABLE: str(template)})
    assert template.is_file() and _revision(home / "prefect.db") == _revision(template)
    assert sorted(p.name for p in template.parent.iterdir()) == ["prefect-test.db"]
    assert not prefect_db.prepare(home, {prefect_db.TEMPLATE_VARIABLE: str(template)})


def test_a_build_leaves_the_process_its_own_database(tmp_path: Path) -> None:
    """A server process builds the template, then starts on its own database: the first
    build's configuration must not stay behind as the process's (Prefect caches it)."""
    from prefect.server.database.dependencies import MODELS_DEPENDENCIES

    before = MODELS_DEPENDENCIES["database_config"]
    migrate = tmp_path / "no-dump.sql"  # no shipped schema: both builds migrate
    prefect_db.build(tmp_path / "one" / "prefect-a.db", migrate)
    migrated = prefect_db.build(tmp_path / "two" / "prefect-a.db", migrate)  # failed before
    assert MODELS_DEPENDENCIES["database_config"] is before
    assert migrated.is_file()

    # What a new user's first run builds instead, in milliseconds: the same schema. When this
    # fails after a Prefect upgrade in uv.lock: `.venv/bin/python -m flows.cli.prefect_db`.
    shipped = prefect_db.shipped_schema()
    assert shipped.is_file(), f"no schema dump for the locked Prefect: {shipped}"
    fast = prefect_db.build(tmp_path / "fast" / "prefect-a.db")
    assert _schema(fast) == _schema(migrated)
    assert not Path(f"{fast}-wal").exists() and fast.stat().st_mode & 0o777 == 0o600

    with sqlite3.connect(fast) as connection:
        blocks = connection.execute("select count(*) from block_type").fetchone()[0]
    connection.close()
    assert blocks > 0 and prefect_db.blocks_registered(fast)  # the catalog is in it

    # The comparison sees a difference where there is one (not an empty description).
    for change in (
        "drop index ix_flow_run__state_type",
        "update block_type set description = 'x' where slug = 'slack-webhook'",
    ):
        changed = tmp_path / "changed.db"
        changed.write_bytes(fast.read_bytes())
        with sqlite3.connect(changed) as connection:
            connection.execute(change)
        connection.close()
        assert _schema(changed) != _schema(migrated), change


def test_a_template_is_built_from_the_dump_it_is_given(tmp_path: Path) -> None:
    dump = tmp_path / "schema.sql"
    dump.write_text(
        "CREATE TABLE alembic_version (version_num VARCHAR(32));\n"
        "INSERT INTO alembic_version VALUES('abc');\n"
    )
    template = prefect_db.build(tmp_path / "cache" / "prefect-x.db", dump)
    assert _revision(template) == "abc"  # the dump's, not a migration's
    assert not prefect_db.blocks_registered(template)  # no catalog: its server registers one
    assert sorted(p.name for p in template.parent.iterdir()) == ["prefect-x.db"]


def _schema(database: Path) -> list[tuple[object, ...]]:
    """Everything the schema holds, in an order of its own: migrations write a table's
    constraints in no fixed order (alembic's batch mode), so each CREATE statement's lines are
    sorted, and the automatic indexes (named by that order) are told by their columns. The
    rows are there too (the revision, and that nothing else is)."""
    with sqlite3.connect(database) as connection:
        entries = connection.execute(
            "select type, name, tbl_name, sql from sqlite_master order by type, name"
        ).fetchall()
        description: list[tuple[object, ...]] = []
        for kind, name, table, sql in entries:
            if kind == "index":
                columns = tuple(connection.execute(f'pragma index_xinfo("{name}")').fetchall())
                auto = name.startswith("sqlite_autoindex_")
                description.append((kind, None if auto else name, table, columns))
            else:
                lines = sorted(line.strip().rstrip(",") for line in (sql or "").splitlines())
                description.append((kind, name, table, tuple(lines)))
            if kind == "table":
                description.append(("rows", name, _rows(connection, name)))
    connection.close()
    return sorted(description, key=repr)


NATURAL_KEYS = {"block_type": "slug", "block_schema": "checksum"}


def _canonical(value: object) -> object:
    """A JSON text with its lists in a sorted order: Prefect writes some sets as lists (a
    block schema's capabilities), in each process's own hash order."""
    if not isinstance(value, str) or value[:1] not in ("[", "{"):
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        return value

    def sort(item: Any) -> Any:
        if isinstance(item, dict):
            return {key: sort(inner) for key, inner in sorted(item.items())}
        if isinstance(item, list):
            return sorted((sort(inner) for inner in item), key=repr)
        return item

    return json.dumps(sort(parsed))


def _rows(connection: sqlite3.Connection, table: str) -> tuple[str, ...]:
    """A table's rows without what each build makes afresh (ids, times), a reference to
    another row told by that row's natural key instead (the block catalog's)."""
    keys: dict[object, object] = {}
    for other, key in NATURAL_KEYS.items():
        keys.update(connection.execute(f"select id, {key} from {other}").fetchall())
    cursor = connection.execute(f'select * from "{table}"')
    names = [column[0] for column in cursor.description]
    rows = []
    for row in cursor.fetchall():
        kept = [
            (name, keys.get(value, value) if name.endswith("_id") else _canonical(value))
            for name, value in zip(names, row, strict=True)
            if name not in ("id", "created", "updated")
        ]
        rows.append(repr(kept))
    return tuple(sorted(rows))
