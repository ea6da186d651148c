"""The files, plan and duplicates routes page by cursor as by offset, before and after the
listing manifest is built, and answer a bad cursor with 400 and a message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from storage import queries
from tests.api.conftest import Api, User
from tests.api.fakes import FILES

LISTINGS = {
    "files": ("/api/v1/files", {"sort": "size", "descending": True}),
    "plan": ("/api/v1/operations/{op}/plan", {}),
    "duplicates": ("/api/v1/operations/{op}/duplicates", {}),
}


def _route(listing: str, op_id: str) -> tuple[str, dict[str, Any]]:
    path, params = LISTINGS[listing]
    if listing == "files":
        params = {**params, "operation_id": op_id}
    return path.format(op=op_id), params


def _walk(api: Api, user: User, path: str, params: dict[str, Any]) -> tuple[list[Any], int]:
    """Every item, one at a time, following next_cursor; and how many pages that took."""
    items: list[Any] = []
    cursor, pages = None, 0
    while True:
        sent = {**params, "limit": 1, **({"cursor": cursor} if cursor else {})}
        response = api.client.get(path, params=sent, headers=user.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["data"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


@pytest.mark.parametrize("built", [False, True], ids=["shards", "manifest"])
@pytest.mark.parametrize("listing", sorted(LISTINGS))
def test_a_listing_pages_by_cursor_as_it_does_whole(
    api: Api, tree: Path, alice: User, listing: str, built: bool
) -> None:
    op_id = api.started(alice, tree / "alice")
    if built:
        queries.build_listing(api.store, api.store.operation_dir(op_id), include_empty=False)
    path, params = _route(listing, op_id)
    whole = api.client.get(path, params={**params, "limit": 500}, headers=alice.headers).json()

    items, pages = _walk(api, alice, path, params)

    assert items == whole["data"] and whole["next_cursor"] is None
    assert pages == max(whole["count"], 1)
    if listing == "files":
        assert len(items) == len(FILES)
        assert [f["size"] for f in items] == sorted((f[1] for f in FILES), reverse=True)


@pytest.mark.parametrize("built", [False, True], ids=["shards", "manifest"])
def test_a_bad_cursor_is_400_with_a_message(api: Api, tree: Path, alice: User, built: bool) -> None:
    op_id = api.started(alice, tree / "alice")
    if built:
        queries.build_listing(api.store, api.store.operation_dir(op_id), include_empty=False)
    listed = {"operation_id": op_id, "limit": 2, "sort": "size"}
    cursor = api.client.get("/api/v1/files", params=listed, headers=alice.headers).json()[
        "next_cursor"
    ]
    assert cursor
    for sent in (
        {**listed, "cursor": "not-a-cursor"},
        {**listed, "cursor": cursor[:-3]},
        {**listed, "cursor": cursor, "sort": "name"},
        {**listed, "cursor": cursor, "category": "images"},
        {**listed, "cursor": cursor, "offset": 2},
    ):
        response = api.client.get("/api/v1/files", params=sent, headers=alice.headers)
        assert response.status_code == 400, sent
        assert "cursor" in response.json()["detail"]
    plan = api.client.get(
        f"/api/v1/operations/{op_id}/plan", params={"cursor": cursor}, headers=alice.headers
    )
    assert plan.status_code == 400  # a cursor of the files is not one of the plan


def test_another_users_cursor_reads_nothing_of_theirs(api: Api, tree: Path, alice: User) -> None:
    op_id = api.started(alice, tree / "alice")
    bob = api.signup("bob")
    listed = {"operation_id": op_id, "limit": 2}
    cursor = api.client.get("/api/v1/files", params=listed, headers=alice.headers).json()[
        "next_cursor"
    ]

    response = api.client.get(
        "/api/v1/files", params={**listed, "cursor": cursor}, headers=bob.headers
    )

    assert response.status_code == 404
