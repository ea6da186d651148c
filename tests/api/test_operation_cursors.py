"""GET /api/v1/operations pages by cursor as by offset, on SQLite and PostgreSQL: operations
started between two pages (through the API, and by another connection, as a second replica or
a schedule's run would) make an offset page repeat rows, and never a cursor page; a bad cursor
is 400 with a message; a cursor page is served from the read cache like any other."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from api import db
from api.models import Operation
from storage.operations import utcnow
from tests.api.conftest import Api, User
from tests.api.test_read_cache import _cached, statements
from tests.polling import until

PATH = "/api/v1/operations"


def _page(api: Api, user: User, **params: Any) -> dict[str, Any]:
    response = api.client.get(PATH, params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _ids(page: dict[str, Any]) -> list[str]:
    return [op["id"] for op in page["data"]]


def _started_elsewhere(api: Api, user: User, tree: Path) -> str:
    """An operation of `user` inserted by another connection (not this app's session)."""
    op_id = uuid.uuid4()
    engine = sa.create_engine(db.sync_url(api.settings.resolved_database_url()))
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.insert(Operation).values(
                    id=op_id,
                    owner_id=uuid.UUID(user.id),
                    operation_type="scan",
                    root_path=str(tree / "alice"),
                    parameters={},
                    dry_run=True,
                    deployment="organize",
                    status="completed",
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
    finally:
        engine.dispose()
    return str(op_id)


def test_operations_started_between_pages_neither_repeat_nor_skip_a_row(
    api: Api, tree: Path, alice: User
) -> None:
    first_ids = [api.started(alice, tree / "alice" / "photos") for _ in range(5)]
    listed_before = _ids(_page(api, alice, limit=50))
    assert sorted(listed_before) == sorted(first_ids)
    by_offset = _page(api, alice, limit=2)
    by_cursor = _page(api, alice, limit=2)
    assert by_offset == by_cursor and by_cursor["next_cursor"]
    assert _ids(by_cursor) == listed_before[:2]

    # Between the first page and the next: one through the API, one by another connection.
    newer = [api.started(alice, tree / "alice" / "photos"), _started_elsewhere(api, alice, tree)]
    until(lambda: _page(api, alice, limit=1)["count"] == 7, 30, "the other connection's row")

    offset_pages = _ids(by_offset)
    for offset in (2, 4):
        offset_pages += _ids(_page(api, alice, limit=2, offset=offset))
    cursor_pages, cursor, counts = _ids(by_cursor), by_cursor["next_cursor"], []
    while cursor:
        following = _page(api, alice, limit=2, cursor=cursor)
        cursor_pages += _ids(following)
        counts.append(following["count"])
        cursor = following["next_cursor"]

    # What offsets showed: the two new rows pushed the first page's rows down, so the next
    # pages repeated them, and three pages no longer reached the last row listed before.
    assert len(offset_pages) != len(set(offset_pages)), "offset pages would have repeated"
    assert set(listed_before) - set(offset_pages), "and left a row out"
    # The cursor pages: every row listed before, once each, in order; none of the new ones.
    assert cursor_pages == listed_before
    assert not set(newer) & set(cursor_pages)
    assert counts == [7] * len(counts)  # count is all the owner's rows, after a cursor too
    assert _ids(_page(api, alice, limit=2))[:2] == newer[::-1]  # newest first, on top


def test_cursor_pages_keep_the_status_filter_and_walk_it_whole(
    api: Api, tree: Path, alice: User
) -> None:
    done = [api.started(alice, tree / "alice" / "photos") for _ in range(3)]
    api.fake.complete = False
    running = api.started(alice, tree / "alice")  # photos are done: no overlap
    walked, cursor = [], None
    while True:
        params = {"limit": 1, "status": "completed", **({"cursor": cursor} if cursor else {})}
        page = _page(api, alice, **params)
        assert page["count"] == 3
        walked += _ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(walked) == sorted(done) and running not in walked
    assert _page(api, alice, limit=3, status="completed")["next_cursor"] is None


def test_a_bad_operations_cursor_is_400_with_a_message(api: Api, tree: Path, alice: User) -> None:
    for _ in range(3):
        api.started(alice, tree / "alice" / "photos")
    cursor = _page(api, alice, limit=1)["next_cursor"]
    bob = api.signup("bob")
    for user, sent in (
        (alice, {"cursor": "not-a-cursor"}),
        (alice, {"cursor": cursor[:-3]}),
        (alice, {"cursor": cursor, "status": "completed"}),  # made without the filter
        (alice, {"cursor": cursor, "offset": 1}),
        (bob, {"cursor": cursor}),  # made for alice's list
    ):
        response = api.client.get(PATH, params={"limit": 1, **sent}, headers=user.headers)
        assert response.status_code == 400, sent
        assert "cursor" in response.json()["detail"]


def test_a_cursor_page_is_served_from_the_read_cache(api: Api, tree: Path, alice: User) -> None:
    for _ in range(3):
        api.started(alice, tree / "alice" / "photos")
    cursor = _page(api, alice, limit=1)["next_cursor"]
    path = f"{PATH}?limit=1&cursor={cursor}"
    shown = _cached(api, alice, path)
    assert len(shown["data"]) == 1 and shown["next_cursor"]
    with statements(api) as sent:
        assert _page(api, alice, limit=1, cursor=cursor) == shown
    assert not sent
