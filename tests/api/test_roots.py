"""Granted roots: only admins grant; nobody starts an operation outside their grants."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.api.conftest import Api, User


def _alice_with_root(api: Api, tree: Path) -> User:
    admin, alice = api.signup("admin"), api.signup("alice")
    api.grant(admin, alice, tree / "alice")
    return alice


def test_admin_grants_lists_and_revokes_roots(api: Api, tree: Path) -> None:
    alice = _alice_with_root(api, tree)
    admin = api.users["admin"]
    listed = api.client.get(f"/api/v1/admin/users/{alice.id}/roots", headers=admin.headers)
    expected_roots = [str(tree / "alice")]
    assert [g["root"] for g in listed.json()["data"]] == expected_roots
    assert api.client.get("/api/v1/auth/me", headers=alice.headers).json()["roots"] == (
        expected_roots
    )
    assert api.started(alice, tree / "alice" / "photos")

    revoked = api.client.delete(
        f"/api/v1/admin/users/{alice.id}/roots",
        params={"root": str(tree / "alice")},
        headers=admin.headers,
    )
    assert revoked.status_code == 204
    assert api.start(alice, tree / "alice" / "photos").status_code == 403


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/admin/users"),
        ("GET", "/api/v1/admin/users/{id}/roots"),
        ("POST", "/api/v1/admin/users/{id}/roots"),
        ("DELETE", "/api/v1/admin/users/{id}/roots?root=/"),
    ],
)
def test_only_admins_manage_roots(api: Api, tree: Path, method: str, path: str) -> None:
    api.signup("admin")
    alice = api.signup("alice")
    response = api.client.request(
        method, path.format(id=alice.id), json={"root": str(tree)}, headers=alice.headers
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("requested", "expected_status"),
    [
        ("alice/photos", 202),
        ("alice", 202),
        ("alice/../bob", 403),
        ("alice/photos/..", 403),
        ("alice2", 403),  # a prefix of the string, not of the path
        ("bob", 403),
        ("", 403),  # the parent of every grant
        ("alice/escape", 403),  # a symlink to bob
        ("alice/inner", 202),  # a symlink that stays inside: canonicalized, allowed
        ("alice/nul\x00", 403),
        ("alice/missing", 400),
        ("alice/photos/cat.jpg", 400),  # a file, not a folder
    ],
)
def test_roots_cannot_be_escaped(
    api: Api, tree: Path, requested: str, expected_status: int
) -> None:
    alice = _alice_with_root(api, tree)
    os.symlink(tree / "bob", tree / "alice" / "escape")
    os.symlink(tree / "alice" / "photos", tree / "alice" / "inner")
    response = api.start(alice, f"{tree}/{requested}".rstrip("/"))
    assert response.status_code == expected_status, response.text
    if expected_status == 202:
        launched_root = api.fake.started[-1][1]["root"]
        assert launched_root == os.path.realpath(f"{tree}/{requested}")
    else:
        assert api.fake.started == []


def test_relative_paths_are_refused(api: Api, tree: Path) -> None:
    alice = _alice_with_root(api, tree)
    assert api.start(alice, "alice/photos").status_code == 400


def test_admins_are_confined_to_their_own_grants(api: Api, tree: Path) -> None:
    admin = api.signup("admin")
    assert api.start(admin, tree / "alice").status_code == 403
    api.grant(admin, admin, tree / "alice")
    assert api.start(admin, tree / "alice").status_code == 202


@pytest.mark.parametrize(
    ("root", "expected_status"),
    [("missing", 400), ("alice/photos/cat.jpg", 400), ("relative", 400), ("with\x00nul", 400)],
)
def test_grants_must_name_existing_folders(
    api: Api, tree: Path, root: str, expected_status: int
) -> None:
    admin = api.signup("admin")
    target = root if root == "relative" else f"{tree}/{root}"
    response = api.client.post(
        f"/api/v1/admin/users/{admin.id}/roots", json={"root": target}, headers=admin.headers
    )
    assert response.status_code == expected_status


SCHEDULE = {"cron": "0 3 * * 0"}


@pytest.mark.parametrize("endpoint", ["/api/v1/operations", "/api/v1/schedules"])
@pytest.mark.parametrize("system", ["/usr", "/usr/share", "/etc"])
def test_a_system_folder_is_refused_whatever_the_grant_says(
    api: Api, endpoint: str, system: str
) -> None:
    """The tryout: an admin granted /usr, and POST /operations planned it (the CLI refuses
    it unless --i-mean-it). The API refuses it with the CLI's reason, even with i_mean_it:
    nobody's files to sort there."""
    admin, alice = api.signup("admin"), api.signup("alice")
    with pytest.MonkeyPatch.context() as before:  # a grant stored before grants were checked
        before.setattr("api.roots.broad_refusal", lambda *args, **kwargs: None)
        api.grant(admin, alice, system)
    extra = SCHEDULE if "schedules" in endpoint else {}

    for asked in ({}, {"i_mean_it": True}):
        body = {"root_path": system, **extra, **asked}
        response = api.client.post(endpoint, json=body, headers=alice.headers)

        assert response.status_code == 400, response.text
        assert response.json()["detail"].startswith(f"{system} is a system folder: programs and")
    assert (api.fake.started, api.fake.schedule_list) == ([], [])


@pytest.mark.parametrize("system", ["/", "/usr", "/usr/share", "/etc", "/bin"])
def test_a_system_folder_or_the_whole_disk_cannot_be_granted(api: Api, system: str) -> None:
    """The tryout: an admin could grant a user /usr (and any operation there was then
    refused). A grant is held to the roots' rule: 400 with its reason, nothing stored."""
    admin, alice = api.signup("admin"), api.signup("alice")

    response = api.client.post(
        f"/api/v1/admin/users/{alice.id}/roots", json={"root": system}, headers=admin.headers
    )
    listed = api.client.get(f"/api/v1/admin/users/{alice.id}/roots", headers=admin.headers)

    assert response.status_code == 400, response.text
    canonical = os.path.realpath(system)
    assert response.json()["detail"].startswith(f"not granted: {canonical} is a system folder")
    assert listed.json()["data"] == []


def test_a_whole_home_can_be_granted(api: Api, tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("storage.roots.HOME_PARENTS", (str(tree),))
    admin, alice = api.signup("admin"), api.signup("alice")

    api.grant(admin, alice, tree / "alice")  # 201: an operation on it asks for i_mean_it


@pytest.mark.parametrize("endpoint", ["/api/v1/operations", "/api/v1/schedules"])
def test_a_whole_home_is_organized_only_when_asked_as_the_cli_does(
    api: Api, tree: Path, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tree/alice stands for /home/alice (a folder of HOME_PARENTS): refused as the CLI
    refuses it without --i-mean-it, accepted with i_mean_it; a folder in it needs nothing."""
    monkeypatch.setattr("storage.roots.HOME_PARENTS", (str(tree),))
    alice = _alice_with_root(api, tree)
    extra = SCHEDULE if "schedules" in endpoint else {}
    home = str(tree / "alice")

    refused = api.client.post(endpoint, json={"root_path": home, **extra}, headers=alice.headers)
    body = {"root_path": home, "i_mean_it": True, **extra}
    asked = api.client.post(endpoint, json=body, headers=alice.headers)
    inside = {"root_path": f"{home}/photos", **extra}
    folder = api.client.post(endpoint, json=inside, headers=alice.headers)

    assert refused.status_code == 400, refused.text
    assert refused.json()["detail"] == (
        f"{home} is a whole home folder: it holds your settings and programs' state: organize"
        " a folder in it (~/Downloads); add i_mean_it to organize it anyway"
    )
    expected_status = 201 if "schedules" in endpoint else 202
    assert (asked.status_code, folder.status_code) == (expected_status,) * 2, asked.text
