"""The process's DuckDB databases: connect() hands out cursors on one database per process,
shared by every caller but nothing a caller registers; workspace() is a database of its own;
a forked child opens its own (issue 14: a connect cost ~70 ms, ~24 of them a run)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa

from storage.locations import DataStore
from storage.queries import connect, workspace


def _tables(store: DataStore, name: str) -> int:
    with connect(store) as con:
        found = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = $name", {"name": name}
        ).fetchone()
    return int(found[0]) if found else 0


def test_connect_reuses_one_database_for_every_data_folder(tmp_path: Path) -> None:
    first, second = DataStore(str(tmp_path / "a")), DataStore(str(tmp_path / "b"))
    with connect(first) as con:
        con.execute("CREATE TABLE reuse_marker AS SELECT 1 AS x")
    try:
        with connect(second) as con:
            assert con.execute("SELECT x FROM reuse_marker").fetchall() == [(1,)]
    finally:
        with connect(first) as con:
            con.execute("DROP TABLE reuse_marker")


def test_what_a_caller_registers_or_makes_temporary_goes_with_its_connection(
    tmp_path: Path,
) -> None:
    store = DataStore(str(tmp_path / "data"))
    with connect(store) as con:
        con.register("mine_arrow", pa.table({"x": [1, 2]}))
        con.execute("CREATE TEMP TABLE mine_temp AS SELECT * FROM mine_arrow")
        assert con.execute("SELECT count(*) FROM mine_temp").fetchall() == [(2,)]
    with connect(store) as con:
        views = con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE view_name = 'mine_arrow'"
        ).fetchall()
    assert (views, _tables(store, "mine_temp")) == ([(0,)], 0)


def test_a_workspace_keeps_its_limits_and_tables_to_itself(tmp_path: Path) -> None:
    store = DataStore(str(tmp_path / "data"))
    with workspace(store) as con:
        con.execute("SET memory_limit = '64MiB'")
        con.execute("CREATE TABLE planned AS SELECT 1 AS x")
        assert con.execute("SELECT current_setting('memory_limit')").fetchall() == [("64.0 MiB",)]
        with connect(store) as other:
            limit = other.execute("SELECT current_setting('memory_limit')").fetchall()
        assert limit != [("64.0 MiB",)]
        assert _tables(store, "planned") == 0


def test_threads_query_at_once_each_on_its_own_cursor(tmp_path: Path) -> None:
    store = DataStore(str(tmp_path / "data"))
    results: dict[int, object] = {}

    def query(n: int) -> None:
        for _ in range(20):
            with connect(store) as con:
                results[n] = con.execute(f"SELECT sum(range) FROM range({n})").fetchone()

    threads = [threading.Thread(target=query, args=(n,)) for n in (10, 100, 1000, 10000)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: (n * (n - 1) // 2,) for n in (10, 100, 1000, 10000)}


# A child forked while another thread of its parent opens a database (holds the lock), after
# the parent made a table in its own: the child opens a database of its own, which has no such
# table, and the parent's still answers once the child is gone.
FORKED = """
import os, signal, sys, threading
from storage.locations import DataStore
from storage.queries import connect, connection
from storage.queries.connection import shared
store = DataStore(sys.argv[1])
with connect(store) as con:
    con.execute("CREATE TABLE parents AS SELECT 41 AS x")
shared(store).execute("SELECT 1").fetchall()
held, release = threading.Event(), threading.Event()
def hold():
    with connection._databases_lock:
        held.set()
        release.wait()
threading.Thread(target=hold).start()
held.wait()
pid = os.fork()
if pid == 0:
    signal.alarm(50)  # a child that hangs on the lock dies rather than outlive the test
    with connect(store) as con:
        seen = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'parents'"
        ).fetchone()[0]
        total = con.execute("SELECT sum(range) FROM range(1000)").fetchone()[0]
    listed = shared(store).execute("SELECT 2").fetchone()[0]
    os._exit(0 if (seen, total, listed) == (0, 499500, 2) else 1)
release.set()
_, status = os.waitpid(pid, 0)
with connect(store) as con:
    print(os.waitstatus_to_exitcode(status), con.execute("SELECT x + 1 FROM parents").fetchone()[0])
"""


def test_a_forked_child_opens_its_own_database(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORKED, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout.split()) == (0, ["0", "42"]), done.stderr
