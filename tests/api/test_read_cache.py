"""The read cache (api.read_cache, api.changes) on SQLite and PostgreSQL: a repeated read asks
the database nothing; a change made through this app shows on the next request (a keeper's
write, a cancel, a logout, a grant); a change another process commits shows at once on SQLite
and within api.changes' bound on PostgreSQL; a miss renders once for every request waiting on
it, and a render that started before a change is never kept."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from api import changes as changes_module
from api.changes import Changes, PostgresChanges
from api.keeper import keeper
from api.orchestrator import RunEvent, RunState
from api.read_cache import Memo
from tests.api.conftest import Api, User
from tests.polling import until

REPO = Path(__file__).resolve().parents[2]
# A row written by another process, as a second API replica or `fileorg` would write it.
OTHER_PROCESS = """
import sys, uuid
import sqlalchemy as sa
from api import db
from api.models import Operation
engine = sa.create_engine(db.sync_url(sys.argv[1]))
with engine.begin() as connection:
    connection.execute(
        sa.update(Operation).where(Operation.id == uuid.UUID(sys.argv[2])).values(status="failed")
    )
engine.dispose()
"""


def _of_the_keeper() -> bool:
    """Sent by the status keeper's own tasks (api.keeper), in the background, whenever its
    timer says: not by a request (a CI run saw its sweep's SELECT inside a block)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop in this thread
        return False
    return task is not None and task.get_name() in ("status-keeper", "status-sweeps")


@contextmanager
def statements(api: Api) -> Iterator[list[str]]:
    """The SQL the app's requests send while the block runs."""
    engine = api.client.app.state.sessions.kw["bind"].sync_engine  # type: ignore[attr-defined]
    sent: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not _of_the_keeper():
            sent.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def _get(api: Api, user: User, path: str) -> Any:
    response = api.client.get(path, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


def _cached(api: Api, user: User, path: str) -> Any:
    """Read `path` until a repeat of it sends no SQL (on PostgreSQL the listener must be up
    first), and return what it showed."""

    def repeat_is_free() -> Any:
        _get(api, user, path)
        with statements(api) as sent:
            shown = _get(api, user, path)
        return shown if not sent else None

    return until(repeat_is_free, 30, f"a repeated GET {path} to send no SQL")


def _operation(api: Api, tree: Path, alice: User) -> tuple[str, str]:
    api.fake.complete = False  # the run stays running: the keeper's writes are what move it
    op_id = api.started(alice, tree / "alice")
    return op_id, api.shown(alice, op_id)["flow_run_id"]


@pytest.mark.parametrize(
    "path", ["/api/v1/operations", "/api/v1/operations?limit=5&status=running", "/api/v1/auth/me"]
)
def test_a_repeated_read_asks_the_database_nothing(
    api: Api, tree: Path, alice: User, path: str
) -> None:
    _operation(api, tree, alice)
    first = _get(api, alice, path)
    assert _cached(api, alice, path) == first


def test_statements_leave_out_the_keepers_background_sql(api: Api) -> None:
    """What the blocks above count: a sweep in the keeper's own task is left out, the same
    sweep in another task is not (so a request's SQL would be seen)."""
    app: Any = api.client.app

    async def sweep_in(name: str) -> None:
        await asyncio.create_task(keeper(app).sweep(everything=True), name=name)

    with statements(api) as in_the_keeper:
        api.client.portal.call(sweep_in, "status-sweeps")  # type: ignore[union-attr]
    with statements(api) as elsewhere:
        api.client.portal.call(sweep_in, "a-request")  # type: ignore[union-attr]
    assert (in_the_keeper, bool(elsewhere)) == ([], True)


def test_a_kept_answer_is_the_routed_one_with_its_cors_headers(make_api: Any, tree: Path) -> None:
    """The second read is answered before routing (api.fast_reads): the same bytes and
    headers, CORS included, as the first, which went through the route."""
    api: Api = make_api(cors_origins=["https://ui.example.org"])
    alice = api.signup("alice")
    headers = {**alice.headers, "Origin": "https://ui.example.org"}
    for path in ("/api/v1/operations?limit=3", "/api/v1/auth/me"):
        routed = api.client.get(path, headers=headers)
        _cached(api, alice, path)
        with statements(api) as sent:
            kept = api.client.get(path, headers=headers)
        assert not sent
        assert (kept.status_code, kept.content) == (200, routed.content)
        for name in ("content-type", "content-length", "access-control-allow-origin"):
            assert kept.headers[name] == routed.headers[name]


def test_a_keeper_write_shows_on_the_next_request(api: Api, tree: Path, alice: User) -> None:
    op_id, run_id = _operation(api, tree, alice)
    path = f"/api/v1/operations/{op_id}"
    assert _cached(api, alice, path)["status"] == "running"
    listed = _cached(api, alice, "/api/v1/operations")
    assert listed["data"][0]["status"] == "running"

    app: Any = api.client.app
    api.fake.runs[run_id] = RunState("failed", "disk gone")
    event = RunEvent(run_id, "state", RunState("failed", "disk gone"))
    api.client.portal.call(lambda: keeper(app).on_run(run_id, event))  # type: ignore[union-attr]

    assert (_get(api, alice, path)["status"], _get(api, alice, path)["error"]) == (
        "failed",
        "disk gone",
    )
    assert _get(api, alice, "/api/v1/operations")["data"][0]["status"] == "failed"


def test_a_cancel_shows_on_the_next_request(api: Api, tree: Path, alice: User) -> None:
    op_id, _ = _operation(api, tree, alice)
    path = f"/api/v1/operations/{op_id}"
    assert _cached(api, alice, path)["status"] == "running"
    cancelled = api.client.post(f"/api/v1/operations/{op_id}/cancel", headers=alice.headers)
    assert cancelled.status_code == 202, cancelled.text
    assert _get(api, alice, path)["status"] == "cancelled"


def test_a_logout_ends_the_cached_reads_of_its_login_at_once(api: Api) -> None:
    alice = api.signup("alice")
    for path in ("/api/v1/auth/me", "/api/v1/operations"):
        _cached(api, alice, path)
    response = api.client.post("/api/v1/auth/logout", json={"refresh_token": alice.refresh})
    assert response.status_code == 204
    for path in ("/api/v1/auth/me", "/api/v1/operations"):
        assert api.client.get(path, headers=alice.headers).status_code == 401


def test_a_grant_shows_on_the_next_request(api: Api, tree: Path) -> None:
    admin, bob = api.signup("admin"), api.signup("bob")
    assert _cached(api, bob, "/api/v1/auth/me")["roots"] == []
    api.grant(admin, bob, tree / "bob")
    assert _get(api, bob, "/api/v1/auth/me")["roots"] == [str(tree / "bob")]


def test_another_users_reads_are_not_shared(api: Api, tree: Path, alice: User) -> None:
    op_id, _ = _operation(api, tree, alice)
    bob = api.signup("bob")
    _cached(api, alice, f"/api/v1/operations/{op_id}")
    response = api.client.get(f"/api/v1/operations/{op_id}", headers=bob.headers)
    assert response.status_code == 404
    assert _get(api, bob, "/api/v1/operations")["count"] == 0


def test_a_change_by_another_process_shows_within_the_bound(
    api: Api, tree: Path, alice: User
) -> None:
    """SQLite: the next request (PRAGMA data_version). PostgreSQL: within ALIVE_SECONDS, in
    practice the notice's few milliseconds."""
    op_id, _ = _operation(api, tree, alice)
    path = f"/api/v1/operations/{op_id}"
    assert _cached(api, alice, path)["status"] == "running"
    url = api.settings.resolved_database_url()
    subprocess.run([sys.executable, "-c", OTHER_PROCESS, url, op_id], cwd=REPO, check=True)

    if url.startswith("sqlite"):
        assert _get(api, alice, path)["status"] == "failed"
        return
    bound = changes_module.ALIVE_SECONDS + 0.5  # the request's own time, on a loaded machine
    until(lambda: _get(api, alice, path)["status"] == "failed", bound, "the other's change")


# --- the memo alone ---------------------------------------------------------------------------


def test_a_miss_renders_once_for_every_request_waiting_on_it() -> None:
    async def scenario() -> list[int]:
        memo, renders = Memo(Changes()), []
        release = asyncio.Event()

        async def render() -> int:
            renders.append(1)
            await release.wait()
            return len(renders)

        waiting = [asyncio.ensure_future(memo.get("k", render)) for _ in range(50)]
        await asyncio.sleep(0)
        release.set()
        shown = await asyncio.gather(*waiting)
        assert await memo.get("k", render) == 1  # kept
        return shown

    assert asyncio.run(scenario()) == [1] * 50


def test_a_render_that_started_before_a_change_is_not_kept() -> None:
    async def scenario() -> tuple[int, int]:
        changes = Changes()
        memo, renders = Memo(changes), []
        release = asyncio.Event()

        async def render() -> int:
            renders.append(1)
            await release.wait()
            return len(renders)

        first = asyncio.ensure_future(memo.get("k", render))
        await asyncio.sleep(0)
        changes.bump()  # a commit while the first render reads
        release.set()
        return await first, await memo.get("k", render)

    assert asyncio.run(scenario()) == (1, 2)


def test_postgresql_without_its_listener_serves_nothing_cached() -> None:
    async def scenario() -> int | None:
        changes = PostgresChanges("postgresql://postgres@127.0.0.1:1/nowhere")
        await changes.start()
        try:
            await asyncio.sleep(0.05)  # not an assertion: the listener's first try fails
            return changes.current()
        finally:
            await changes.close()

    assert asyncio.run(scenario()) is None


class Unseen(Changes):
    """Changes elsewhere cannot be seen (PostgreSQL's listener down)."""

    def current(self) -> int | None:
        return None


def test_unseen_changes_share_a_render_but_keep_nothing() -> None:
    async def scenario() -> tuple[list[int], int]:
        memo, renders = Memo(Unseen()), []
        release = asyncio.Event()

        async def render() -> int:
            renders.append(1)
            await release.wait()
            return len(renders)

        waiting = [asyncio.ensure_future(memo.get("k", render)) for _ in range(50)]
        await asyncio.sleep(0)
        release.set()
        shown = await asyncio.gather(*waiting)
        return shown, await memo.get("k", render)

    assert asyncio.run(scenario()) == ([1] * 50, 2)
