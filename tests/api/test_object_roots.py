"""Object-store roots (`s3://bucket/prefix`) in grants, operations and schedules.

Profiles come from the operator (the `s3` fixture's FILEORG_PROFILES: `s3` and `r2` on moto);
an API user only ever sends the root string.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api, User
from tests.conftest import S3Env
from tests.s3proxy import S3Proxy, add_profile

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
GRANTED = "s3://media/data/alice"


@pytest.fixture
def alice(api: Api, s3: S3Env) -> User:
    """alice, granted s3://media/data/alice (the bucket exists; `other` does too)."""
    s3.bucket("media")
    s3.bucket("other")
    admin, alice = api.signup("admin"), api.signup("alice")
    api.grant(admin, alice, GRANTED)
    return alice


def _grant(api: Api, root: str) -> Any:
    admin = api.users["admin"]
    return api.client.post(
        f"/api/v1/admin/users/{admin.id}/roots", json={"root": root}, headers=admin.headers
    )


@SQLITE
@pytest.mark.parametrize(
    ("requested", "expected_status", "expected_root"),
    [
        ("s3://media/data/alice", 202, GRANTED),
        ("s3://media/data/alice/", 202, GRANTED),  # canonical: no trailing slash
        ("s3://media/data/alice/photos 2019/été", 202, f"{GRANTED}/photos 2019/été"),
        ("s3://media/data/alice2", 403, None),  # a prefix of the string, not of the path
        ("s3://media/data", 403, None),
        ("s3://media", 403, None),
        ("s3://other/data/alice", 403, None),  # another bucket
        ("r2://media/data/alice", 403, None),  # another profile
        ("s3://media/data/alice/../bob", 403, None),
        ("s3://media/data/alice/..", 403, None),
        ("s3://media/data/alice/x\x00", 403, None),
        ("s3://media/data/alice//x", 400, None),
        ("s3://media/data/alice/./x", 400, None),
        ("s3://Media/data/alice", 400, None),  # not a bucket name
        ("S3://media/data/alice", 400, None),  # not a profile, not an absolute path
        ("memory://media/data/alice", 400, None),  # fsspec's, never a profile
        ("/media/data/alice", 403, None),  # a local path is never inside an object root
    ],
)
def test_object_roots_are_canonical_and_compared_by_components(
    api: Api, alice: User, requested: str, expected_status: int, expected_root: str | None
) -> None:
    response = api.start(alice, requested)

    assert response.status_code == expected_status, response.text
    launched = [parameters["root"] for _, parameters in api.fake.started]
    assert launched == ([expected_root] if expected_root else [])


@SQLITE
def test_object_grants_and_local_grants_do_not_mix(api: Api, alice: User, tree: Path) -> None:
    admin = api.users["admin"]
    api.grant(admin, alice, tree / "alice")

    assert api.start(alice, tree / "alice").status_code == 202
    assert api.start(alice, f"s3://media{tree}/alice").status_code == 403
    assert api.start(alice, f"{GRANTED}/photos").status_code == 202


@SQLITE
@pytest.mark.parametrize(
    "requested",
    [
        "s3://AKIAFILEORGTEST:fileorg-test-secret-do-not-log@media/data/alice",
        "s3://user@media/data/alice",
        "s3://media:9000/data/alice",
        "s3://media/data/alice?endpoint=http://evil.example",
        "s3://media/data/alice?endpoint_url=evil.example",
        "s3://media/data/alice#fragment",
    ],
)
def test_a_root_cannot_carry_credentials_or_an_endpoint(
    api: Api, alice: User, requested: str
) -> None:
    started = api.start(alice, requested)
    granted = _grant(api, requested)

    assert (started.status_code, granted.status_code) == (400, 400)
    assert "secret" not in started.text + granted.text  # the refusal does not repeat it
    assert api.fake.started == []


@SQLITE
@pytest.mark.parametrize(
    "extra",
    [
        {"endpoint_url": "http://evil.example"},
        {"profile": "r2"},
        {"storage_options": {"key": "K", "secret": "S"}},
        {"key": "K", "secret": "S"},
        {"client_kwargs": {"endpoint_url": "http://evil.example"}},
    ],
)
def test_request_bodies_take_only_the_root_string(
    api: Api, alice: User, extra: dict[str, Any]
) -> None:
    admin = api.users["admin"]
    schedule = {"root_path": GRANTED, "interval_seconds": 3600, **extra}

    assert api.start(alice, GRANTED, **extra).status_code == 422
    scheduled = api.client.post("/api/v1/schedules", json=schedule, headers=alice.headers)
    assert scheduled.status_code == 422
    grant = api.client.post(
        f"/api/v1/admin/users/{alice.id}/roots",
        json={"root": GRANTED, **extra},
        headers=admin.headers,
    )
    assert grant.status_code == 422
    assert (api.fake.started, api.fake.schedule_list) == ([], [])


@SQLITE
def test_an_unknown_profile_is_named_and_no_endpoint_shown(
    api: Api, alice: User, s3: S3Env
) -> None:
    granted = _grant(api, "minio://media/data")
    started = api.start(alice, "minio://media/data/alice")

    assert (granted.status_code, started.status_code) == (400, 400)
    for response in (granted, started):
        detail = response.json()["detail"]
        assert "unknown storage profile 'minio'" in detail
        assert s3.endpoint not in detail and "http" not in detail
    assert api.fake.started == []


@SQLITE
def test_a_missing_bucket_is_refused_when_the_operation_starts(api: Api, alice: User) -> None:
    admin = api.users["admin"]
    api.grant(admin, alice, "s3://not-created-yet/data")  # granting does not ask the store

    response = api.start(alice, "s3://not-created-yet/data/x")

    assert response.status_code == 400
    assert response.json()["detail"] == (
        "root s3://not-created-yet/data/x: the bucket does not exist"
    )
    assert api.fake.started == []


def test_overlapping_object_roots_do_not_run_at_once(api: Api, alice: User, tree: Path) -> None:
    admin = api.users["admin"]
    api.grant(admin, alice, "s3://media/data")
    api.grant(admin, alice, "s3://other")
    api.grant(admin, alice, tree / "alice")
    api.fake.complete = False

    first = api.started(alice, f"{GRANTED}/photos")

    assert api.start(alice, GRANTED).status_code == 409  # contains the running root
    assert api.start(alice, f"{GRANTED}/photos/2019").status_code == 409  # inside it
    assert api.start(alice, "s3://media/data").status_code == 409
    assert api.start(alice, f"{GRANTED}/photos2").status_code == 202  # beside it
    assert api.start(alice, "s3://other/data/alice/photos").status_code == 202  # other bucket
    assert api.start(alice, tree / "alice").status_code == 202  # local
    api.fake.finish()
    assert api.client.get(f"/api/v1/operations/{first}", headers=alice.headers).json()[
        "status"
    ] == ("completed")
    assert api.start(alice, GRANTED).status_code == 202


@SQLITE
def test_object_grants_are_listed_canonical_and_revoked_in_any_spelling(
    api: Api, alice: User
) -> None:
    admin = api.users["admin"]
    path = f"/api/v1/admin/users/{alice.id}/roots"
    api.grant(admin, alice, "s3://media/shared/")
    listed = api.client.get(path, headers=admin.headers).json()["data"]
    assert sorted(g["root"] for g in listed) == sorted([GRANTED, "s3://media/shared"])

    revoked = api.client.delete(path, params={"root": "s3://media/shared/"}, headers=admin.headers)

    assert revoked.status_code == 204
    assert [g["root"] for g in api.client.get(path, headers=admin.headers).json()["data"]] == [
        GRANTED
    ]
    assert api.start(alice, "s3://media/shared").status_code == 403


@SQLITE
@pytest.mark.parametrize(
    ("requested", "expected_status"),
    [
        (f"{GRANTED}/photos/", 201),
        ("s3://media/data/alice2", 403),
        ("s3://media/data/alice/../bob", 403),
        ("s3://not-created-yet/data/alice", 403),
        ("minio://media/data/alice", 400),
        ("s3://media/data/alice?endpoint=http://evil.example", 400),
    ],
)
def test_schedules_take_object_roots_like_operations(
    api: Api, alice: User, requested: str, expected_status: int
) -> None:
    body = {"root_path": requested, "cron": "0 3 * * 0"}

    response = api.client.post("/api/v1/schedules", json=body, headers=alice.headers)

    assert response.status_code == expected_status, response.text
    if expected_status == 201:
        assert response.json()["root_path"] == f"{GRANTED}/photos"
        [schedule] = api.fake.schedule_list
        assert schedule.parameters["root"] == f"{GRANTED}/photos"
    else:
        assert api.fake.schedule_list == []


@SQLITE
def test_a_schedule_on_a_missing_bucket_is_refused(api: Api, alice: User) -> None:
    api.grant(api.users["admin"], alice, "s3://not-created-yet")
    body = {"root_path": "s3://not-created-yet/x", "interval_seconds": 3600}

    response = api.client.post("/api/v1/schedules", json=body, headers=alice.headers)

    assert response.status_code == 400
    assert "the bucket does not exist" in response.json()["detail"]
    assert api.fake.schedule_list == []


@SQLITE
def test_a_store_that_denies_access_is_a_one_line_400(
    api: Api, alice: User, s3: S3Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    with S3Proxy(s3.endpoint).running() as proxy:
        add_profile(monkeypatch, "locked", endpoint_url=proxy.url)
        api.grant(api.users["admin"], alice, "locked://media")
        proxy.deny = True

        response = api.start(alice, "locked://media/data")

    assert response.status_code == 400
    assert response.json()["detail"] == (
        "root locked://media/data: access denied (check the storage profile's credentials)"
    )
    assert api.fake.started == []


@SQLITE
def test_an_unreachable_store_does_not_show_its_endpoint(
    api: Api, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    add_profile(monkeypatch, "offline", endpoint_url=endpoint, max_attempts=1)
    api.grant(api.users["admin"], alice, "offline://media")

    response = api.start(alice, "offline://media/data")

    assert response.status_code == 400
    assert response.json()["detail"] == (
        "root offline://media/data: the store cannot be reached (check the profile's endpoint)"
    )


@SQLITE
def test_hard_links_are_refused_on_object_roots_before_any_run(
    api: Api, alice: User, tree: Path
) -> None:
    response = api.start(alice, GRANTED, operation_type="dedupe", duplicates="hardlink")
    schedule = {"root_path": GRANTED, "cron": "0 3 * * *", "duplicates": "hardlink"}
    scheduled = api.client.post("/api/v1/schedules", json=schedule, headers=alice.headers)

    assert (response.status_code, scheduled.status_code) == (400, 400)
    assert "'hardlink' is not possible on an object-store root" in response.json()["detail"]
    assert api.fake.started == []
    api.grant(api.users["admin"], alice, tree / "alice")
    local = api.start(alice, tree / "alice", operation_type="dedupe", duplicates="hardlink")
    assert local.status_code == 202  # the same request on local disk is fine
