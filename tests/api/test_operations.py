"""Operations through the API with a fake orchestrator: start, follow, read, apply, undo."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jwt
import pytest

from api.orchestrator import APPLY_PLAN, ORGANIZE, ROLLBACK
from api.schemas import PlanOutcome
from storage import operations, tickets
from storage.journal import Journal, item_seq, journal_dir
from storage.outcomes import OUTCOMES
from tests.api.conftest import Api, User
from tests.api.fakes import FILES, MOVES


def _get(api: Api, user: User, path: str, **params: Any) -> Any:
    return api.client.get(path, params=params, headers=user.headers)


def _post(api: Api, user: User, path: str) -> Any:
    return api.client.post(path, headers=user.headers)


@pytest.mark.parametrize(
    ("body", "expected_options", "expected_dry_run"),
    [
        (
            {},
            {"mode": "category_year", "duplicates": "report", "keep": "oldest"},
            True,
        ),
        (
            {"organization_mode": "year_month", "duplicates": "quarantine", "dry_run": False},
            {"mode": "year_month", "duplicates": "quarantine", "keep": "oldest"},
            False,
        ),
        (
            {"operation_type": "scan", "duplicates": "hardlink", "dry_run": False},
            {"mode": "category_year", "duplicates": "report", "keep": "oldest"},
            True,
        ),
        (
            {"operation_type": "dedupe", "duplicates": "quarantine", "keep": "newest"},
            {"mode": "category_year", "duplicates": "quarantine", "keep": "newest"},
            True,
        ),
    ],
    ids=["organize-dry-run", "organize-apply", "scan", "dedupe"],
)
def test_start_triggers_the_organize_deployment(
    api: Api,
    tree: Path,
    alice: User,
    body: dict[str, Any],
    expected_options: dict[str, Any],
    expected_dry_run: bool,
) -> None:
    api.fake.complete = False
    response = api.start(alice, tree / "alice", **body)
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    [(deployment, parameters)] = api.fake.started
    assert deployment == ORGANIZE
    assert parameters["operation_id"] == response.json()["operation_id"]
    assert parameters["root"] == str(tree / "alice")
    assert parameters["dry_run"] is expected_dry_run
    assert {k: parameters["options"][k] for k in expected_options} == expected_options
    signed = _ticket(parameters)  # the run's ticket names exactly what it is asked (#4)
    assert (signed["kind"], signed["op"], signed["owner"]) == (
        "organize",
        parameters["operation_id"],
        alice.id,
    )
    asked = ("root", "root_identity", "options", "dry_run")
    assert {k: signed[k] for k in asked} == {k: parameters[k] for k in asked}


def test_status_follows_the_run(api: Api, tree: Path, alice: User) -> None:
    api.fake.complete = False
    op_id = api.started(alice, tree / "alice")
    running = _get(api, alice, f"/api/v1/operations/{op_id}").json()
    assert (running["status"], running["state"]) == ("running", None)
    api.fake.finish()
    done = _get(api, alice, f"/api/v1/operations/{op_id}").json()
    assert (done["status"], done["state"], done["run"]) == ("completed", "planned", "organize")
    assert done["stages"]["scan"]["files"] == len(FILES)
    assert done["flow_run_id"]


def test_a_failed_run_shows_its_error(api: Api, tree: Path, alice: User) -> None:
    api.fake.complete = False
    op_id = api.started(alice, tree / "alice")
    api.fake.finish("failed", "root vanished")
    shown = _get(api, alice, f"/api/v1/operations/{op_id}").json()
    assert (shown["status"], shown["error"]) == ("failed", "root vanished")


def test_list_is_paged_newest_first_and_filtered(api: Api, tree: Path, alice: User) -> None:
    ids = [api.started(alice, tree / "alice" / "photos") for _ in range(3)]
    api.fake.complete = False
    running = api.started(alice, tree / "alice")  # photos are done: no overlap
    first = _get(api, alice, "/api/v1/operations", limit=2).json()
    second = _get(api, alice, "/api/v1/operations", limit=2, offset=2).json()
    assert first["count"] == 4
    listed = [o["id"] for o in first["data"] + second["data"]]
    assert sorted(listed) == sorted([*ids, running])
    assert listed[0] == running
    only_completed = _get(api, alice, "/api/v1/operations", status="completed").json()
    assert sorted(o["id"] for o in only_completed["data"]) == sorted(ids)


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "ten"}, {"status": "sleeping"}],
)
def test_bad_paging_is_422(api: Api, alice: User, params: dict[str, Any]) -> None:
    assert _get(api, alice, "/api/v1/operations", **params).status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"operation_type": "shred"},
        {"organization_mode": "chaos"},
        {"duplicates": "delete"},
        {"dry_run": "maybe"},
        {"root_path": 42},
        {"exclude": "not-a-list"},
        {"exclude": ["["]},  # fnmatch would match a file named '[' only (storage.templates)
        {"exclude": ["Photos/2019"]},
        {"unknown_field": 1},
    ],
)
def test_bad_operation_bodies_are_422(
    api: Api, tree: Path, alice: User, body: dict[str, Any]
) -> None:
    assert api.start(alice, tree / "alice", **body).status_code == 422
    assert api.fake.started == []


def test_a_bad_exclude_pattern_is_422_with_the_cli_line(api: Api, tree: Path, alice: User) -> None:
    response = api.start(alice, tree / "alice", exclude=["*.[jJ"])

    assert response.status_code == 422, response.text
    assert "exclude pattern '*.[jJ' has a '[' with no closing ']'" in response.text
    assert api.fake.started == []


def test_plan_is_paged_in_stable_order(api: Api, tree: Path, alice: User) -> None:
    op_id = api.started(alice, tree / "alice")
    pages = [
        _get(api, alice, f"/api/v1/operations/{op_id}/plan", limit=2, offset=offset).json()
        for offset in (0, 2, 4)
    ]
    sources = [item["src"] for page in pages for item in page["data"]]
    expected_sources = sorted(
        (f[0] for f in FILES), key=lambda p: p
    )  # DuckDB orders binary paths bytewise
    assert sources == [p.decode("utf-8", "backslashreplace") for p in expected_sources]
    assert pages[0]["count"] == len(FILES)
    moves = _get(api, alice, f"/api/v1/operations/{op_id}/plan", action="move").json()
    assert moves["count"] == MOVES


def _journal(api: Api, op_id: str, name: str, entries: list[dict[str, Any]]) -> None:
    """Journal lines as apply and rollback write them (storage.journal)."""
    op_dir = api.store.operation_dir(op_id)
    path = f"{journal_dir(api.store, op_dir)}/{name}/move-00000.jsonl"
    with Journal(path) as journal:
        for entry in entries:
            journal.add(entry)


def _intent(seq: str, src: bytes, dst: bytes) -> dict[str, Any]:
    return {
        "seq": seq,
        "phase": "intent",
        "action": "move",
        "src": os.fsdecode(src),
        "dst": os.fsdecode(dst),
    }


def test_plan_filters_by_outcome(api: Api, tree: Path, alice: User) -> None:
    """Outcomes come from the journals: an apply that skipped one file and met one conflict,
    and a rollback that was refused one of the files it had moved."""
    op_id = api.started(alice, tree / "alice")
    # Apply journals each moving row under its row's key (storage.journal.item_seq): the
    # fake's plan is one shard in FILES order, and its row 1 (the kept copy) does not move.
    row = {f[0]: index for index, f in enumerate(FILES)}
    moved = [p for p in (f[0] for f in FILES) if p != b"b/photo copy.jpg"]
    seq = [item_seq("move", 0, row[src]) for src in moved]
    intents = [_intent(key, src, b"X/" + src) for key, src in zip(seq, moved, strict=True)]
    outcomes = [
        {"seq": seq[0], "phase": "done", "dev": 1, "ino": 1},
        {"seq": seq[1], "phase": "skipped", "reason": "changed since scan"},
        {"seq": seq[2], "phase": "skipped", "reason": "conflict: destination exists"},
        {"seq": seq[3], "phase": "done", "dev": 1, "ino": 4},
    ]
    _journal(api, op_id, "apply", intents + outcomes)
    _journal(
        api,
        op_id,
        "rollback",
        [
            {"seq": seq[3], "phase": "intent", "action": "move"},
            {"seq": seq[3], "phase": "skipped", "reason": "conflict: destination exists"},
        ],
    )
    url = f"/api/v1/operations/{op_id}/plan"

    def listed(outcome: str) -> list[tuple[str, str | None]]:
        page = _get(api, alice, url, outcome=outcome).json()
        assert page["count"] == len(page["data"])
        return [(item["src"], item["outcome_reason"]) for item in page["data"]]

    shown = [p.decode("utf-8", "backslashreplace") for p in moved]  # as the API shows paths
    assert listed("skipped") == [(shown[1], "changed since scan")]
    assert listed("conflict") == [(shown[2], "conflict: destination exists")]
    assert listed("applied") == [(shown[0], None), (shown[3], "its original path is taken")]
    assert listed("refused") == [(shown[3], "its original path is taken")]
    assert listed("failed") == []
    assert _get(api, alice, url, outcome="lost").status_code == 422
    assert {o.value for o in PlanOutcome} == set(OUTCOMES)


def test_duplicates_and_report(api: Api, tree: Path, alice: User) -> None:
    op_id = api.started(alice, tree / "alice")
    groups = _get(api, alice, f"/api/v1/operations/{op_id}/duplicates").json()
    assert groups["count"] == 1
    assert groups["data"][0]["paths"] == ["a/photo.jpg", "b/photo copy.jpg"]
    assert groups["data"][0]["wasted_bytes"] == 300
    report = _get(api, alice, f"/api/v1/operations/{op_id}/report").json()
    assert (report["files"], report["plan"]["moves"], report["apply"]) == (len(FILES), MOVES, None)


def test_a_report_with_a_name_that_is_not_utf8_is_served_escaped(
    api: Api, tree: Path, alice: User
) -> None:
    op_id = api.started(alice, tree / "alice")
    op_dir = api.store.operation_dir(op_id)
    built = json.loads(api.store.read_bytes(f"{op_dir}/report.json"))
    bad = os.fsdecode(b"x/caf\xe9.jpg")  # how tasks.report stores such a name (README)
    built["duplicates"]["top_groups"] = [
        {
            "digest": "01" * 32,
            "size": 300,
            "copies": 2,
            "wasted_bytes": 300,
            "paths": ["a/photo.jpg", bad],
        },
    ]
    api.store.write_bytes(f"{op_dir}/report.json", json.dumps(built).encode())

    answer = _get(api, alice, f"/api/v1/operations/{op_id}/report")

    assert answer.status_code == 200, answer.text  # was a 500: JSON has no lone surrogates
    paths = answer.json()["duplicates"]["top_groups"][0]["paths"]
    assert paths == ["a/photo.jpg", "x/caf\\xe9.jpg"]  # the files listing's escape


@pytest.mark.parametrize(
    ("params", "expected_paths"),
    [
        ({}, ["a/photo.jpg", "b/photo copy.jpg", "caf\\xe9.bin", "doc.pdf", "notes.txt"]),
        ({"category": "documents"}, ["doc.pdf", "notes.txt"]),
        ({"category": "Documents"}, ["doc.pdf", "notes.txt"]),  # as the CLI takes it
        ({"year": 2019}, ["a/photo.jpg", "b/photo copy.jpg"]),
        ({"extension": ".PDF"}, ["doc.pdf"]),
        ({"min_size": 50, "max_size": 300}, ["a/photo.jpg", "b/photo copy.jpg", "caf\\xe9.bin"]),
        ({"name": "PHOTO"}, ["a/photo.jpg", "b/photo copy.jpg"]),
        (
            {"sort": "size", "descending": True},
            ["doc.pdf", "a/photo.jpg", "b/photo copy.jpg", "caf\\xe9.bin", "notes.txt"],
        ),
        ({"limit": 2, "offset": 3}, ["doc.pdf", "notes.txt"]),
    ],
)
def test_files_filters_and_sorts(
    api: Api, tree: Path, alice: User, params: dict[str, Any], expected_paths: list[str]
) -> None:
    op_id = api.started(alice, tree / "alice")
    listed = _get(api, alice, "/api/v1/files", operation_id=op_id, **params).json()
    assert [f["path"] for f in listed["data"]] == expected_paths


def test_files_of_an_unknown_category_are_422_not_an_empty_page(
    api: Api, tree: Path, alice: User
) -> None:
    op_id = api.started(alice, tree / "alice")

    response = _get(api, alice, "/api/v1/files", operation_id=op_id, category="imagse")

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["msg"] == (
        "unknown category 'imagse': use images, videos, audio, documents, spreadsheets,"
        " presentations, archives, code, fonts, ebooks, other"
    )


def test_reads_before_the_manifests_exist_are_409(api: Api, tree: Path, alice: User) -> None:
    api.fake.complete = False
    op_id = api.started(alice, tree / "alice")
    for path in ("plan", "duplicates", "report"):
        assert _get(api, alice, f"/api/v1/operations/{op_id}/{path}").status_code == 409
    assert _get(api, alice, "/api/v1/files", operation_id=op_id).status_code == 409


def test_apply_a_reviewed_dry_run_then_roll_it_back(api: Api, tree: Path, alice: User) -> None:
    op_id = api.started(alice, tree / "alice")
    applied = _post(api, alice, f"/api/v1/operations/{op_id}/apply")
    assert applied.status_code == 202
    assert api.fake.started[-1][0] == APPLY_PLAN
    assert _ticket(api.fake.started[-1][1])["kind"] == "apply"
    assert api.fake.started[-1][1]["operation_id"] == op_id
    shown = _get(api, alice, f"/api/v1/operations/{op_id}").json()
    assert (shown["status"], shown["state"], shown["run"]) == ("completed", "applied", "apply")
    report = _get(api, alice, f"/api/v1/operations/{op_id}/report").json()
    assert report["apply"]["done"] == MOVES

    undone = _post(api, alice, f"/api/v1/operations/{op_id}/rollback")
    assert undone.status_code == 202
    undo_id = undone.json()["operation_id"]
    assert undo_id != op_id
    assert api.fake.started[-1][0] == ROLLBACK
    assert (_ticket(api.fake.started[-1][1])["kind"], api.fake.started[-1][1]["operation_id"]) == (
        "rollback",
        op_id,
    )
    undo = _get(api, alice, f"/api/v1/operations/{undo_id}").json()
    assert (undo["operation_type"], undo["source_operation_id"], undo["state"]) == (
        "rollback",
        op_id,
        "rolled_back",
    )
    again = _post(api, alice, f"/api/v1/operations/{op_id}/rollback")
    record = operations.load(api.store, op_id)
    expected_detail = operations.repeat_refusal(record, "rollback")  # the CLI's line too
    assert (again.status_code, again.json()["detail"]) == (409, expected_detail)
    assert expected_detail == f"operation {op_id} is already rolled back: nothing to undo"


def test_apply_of_a_plan_another_operation_changed_the_tree_under_is_409(
    api: Api, tree: Path
) -> None:
    """`fileorg apply` refuses a stale plan; POST /apply went ahead, and every file the other
    operation had moved was skipped as vanished: a tree half in one layout, half in another.
    The other operation here is another user's (both were granted the root): never named."""
    admin, alice = api.signup("admin"), api.signup("alice")
    api.grant(admin, alice, tree / "alice")
    api.grant(admin, admin, tree / "alice")
    reviewed = api.started(alice, tree / "alice")
    other = api.started(admin, tree / "alice", dry_run=False)  # planned and applied since
    started_before = len(api.fake.started)

    refused = _post(api, alice, f"/api/v1/operations/{reviewed}/apply")

    expected_detail = (
        f"the plan of {reviewed} is stale: another operation changed files under "
        f"{tree / 'alice'} after it was made; plan again"
    )
    assert (refused.status_code, refused.json()["detail"]) == (409, expected_detail)
    assert other not in refused.text
    assert len(api.fake.started) == started_before  # no run started
    assert operations.load(api.store, reviewed).status == "planned"


def test_rollback_under_a_newer_operations_moves_is_409(api: Api, tree: Path) -> None:
    """Rollbacks newest first (storage.rollback_order): the older of two applies on one root
    is refused while the newer's moves are in place, without naming the newer (another
    user's here); once that one is rolled back, the older one may be."""
    admin, alice = api.signup("admin"), api.signup("alice")
    api.grant(admin, alice, tree / "alice")
    api.grant(admin, admin, tree / "alice")
    older = api.started(alice, tree / "alice", dry_run=False)
    newer = api.started(admin, tree / "alice", dry_run=False)
    started_before = len(api.fake.started)

    refused = _post(api, alice, f"/api/v1/operations/{older}/rollback")

    expected_detail = (
        f"another operation moved files under {tree / 'alice'} after {older} was applied,"
        " and is not rolled back: roll that one back first"
    )
    assert (refused.status_code, refused.json()["detail"]) == (409, expected_detail)
    assert newer not in refused.text
    assert len(api.fake.started) == started_before  # no run started
    assert _post(api, admin, f"/api/v1/operations/{newer}/rollback").status_code == 202
    assert _post(api, alice, f"/api/v1/operations/{older}/rollback").status_code == 202


@pytest.mark.parametrize(
    ("body", "finish", "expected_detail"),
    [
        ({"operation_type": "scan"}, None, "only organize operations change files"),
        ({"operation_type": "dedupe"}, None, "only organize operations change files"),
        ({"dry_run": False}, None, "is already applied: nothing to do (undo it with POST /api/v1/"),
        ({}, "running", "still running"),
        ({}, "failed", "not a finished dry run (status: failed)"),
    ],
)
def test_apply_needs_a_finished_dry_run(
    api: Api,
    tree: Path,
    alice: User,
    body: dict[str, Any],
    finish: str | None,
    expected_detail: str,
) -> None:
    api.fake.complete = finish is None
    op_id = api.started(alice, tree / "alice", **body)
    if finish == "failed":
        api.fake.finish("failed", "boom")
    response = _post(api, alice, f"/api/v1/operations/{op_id}/apply")
    assert response.status_code == 409
    assert expected_detail in response.json()["detail"]
    assert "fileorg" not in response.json()["detail"]  # an API answer names the API's request


def test_rollback_of_an_operation_never_applied_is_409(api: Api, tree: Path, alice: User) -> None:
    op_id = api.started(alice, tree / "alice")
    response = _post(api, alice, f"/api/v1/operations/{op_id}/rollback")
    assert response.status_code == 409
    assert "never applied" in response.json()["detail"]


def test_cancel_a_running_operation(api: Api, tree: Path, alice: User) -> None:
    api.fake.complete = False
    op_id = api.started(alice, tree / "alice")
    response = _post(api, alice, f"/api/v1/operations/{op_id}/cancel")
    assert (response.status_code, response.json()["status"]) == (202, "cancelled")
    assert len(api.fake.cancelled) == 1
    again = _post(api, alice, f"/api/v1/operations/{op_id}/cancel")
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("first", "second", "expected_status"),
    [
        ("alice", "alice", 409),
        ("alice", "alice/photos", 409),
        ("alice/photos", "alice", 409),
        ("alice/photos", "alice/other", 202),
    ],
)
def test_overlapping_roots_do_not_run_at_once(
    api: Api, tree: Path, alice: User, first: str, second: str, expected_status: int
) -> None:
    (tree / "alice" / "other").mkdir()
    api.fake.complete = False
    api.started(alice, tree / first)
    assert api.start(alice, tree / second).status_code == expected_status


def test_overlap_is_checked_across_users_and_ends_with_the_run(api: Api, tree: Path) -> None:
    admin, alice, bob = api.signup("admin"), api.signup("alice"), api.signup("bob")
    api.grant(admin, alice, tree / "alice")
    api.grant(admin, bob, tree / "alice" / "photos")
    api.fake.complete = False
    api.started(alice, tree / "alice")
    blocked = api.start(bob, tree / "alice" / "photos")
    assert blocked.status_code == 409
    assert "overlapping" in blocked.json()["detail"]
    api.fake.finish()
    assert api.start(bob, tree / "alice" / "photos").status_code == 202


def test_orchestrator_down_is_503_and_the_operation_failed(
    api: Api, tree: Path, alice: User
) -> None:
    api.fake.down = True
    response = api.start(alice, tree / "alice")
    assert response.status_code == 503
    [shown] = _get(api, alice, "/api/v1/operations").json()["data"]
    assert shown["status"] == "failed"
    status = api.client.get("/api/v1/status")
    assert (status.status_code, status.json()["prefect"]["ok"]) == (503, False)


def test_status_reports_database_and_prefect(api: Api) -> None:
    body = api.client.get("/api/v1/status").json()
    expected_database = api.settings.resolved_database_url().split(":")[0]
    assert body["status"] == "ready"
    assert body["database"] == {"ok": True, "version": expected_database, "error": None}
    assert body["prefect"]["version"] == "fake"
    assert api.client.get("/health").json() == {"status": "ok"}


ID_ENDPOINTS = [
    ("GET", "/api/v1/operations/{id}"),
    ("GET", "/api/v1/operations/{id}/plan"),
    ("GET", "/api/v1/operations/{id}/duplicates"),
    ("GET", "/api/v1/operations/{id}/report"),
    ("GET", "/api/v1/files?operation_id={id}"),
    ("POST", "/api/v1/operations/{id}/apply"),
    ("POST", "/api/v1/operations/{id}/cancel"),
    ("POST", "/api/v1/operations/{id}/rollback"),
]


@pytest.mark.parametrize(("method", "path"), ID_ENDPOINTS)
def test_another_users_operation_is_404(api: Api, tree: Path, method: str, path: str) -> None:
    admin, alice, mallory = api.signup("admin"), api.signup("alice"), api.signup("mallory")
    api.grant(admin, alice, tree / "alice")
    op_id = api.started(alice, tree / "alice")
    _post(api, alice, f"/api/v1/operations/{op_id}/apply")  # so that rollback would be allowed
    runs = len(api.fake.started)
    response = api.client.request(method, path.format(id=op_id), headers=mallory.headers)
    assert (response.status_code, response.json()) == (404, {"detail": "operation not found"})
    assert len(api.fake.started) == runs
    owner = api.client.request(method, path.format(id=op_id), headers=alice.headers)
    assert owner.status_code != 404  # the same request finds the owner's operation


@pytest.mark.parametrize(
    ("operation_id", "expected_status"),
    [("0b5e2b6c-8f8e-4a4b-9f6a-1d2c3b4a5e6f", 404), ("not-a-uuid", 422), ("1234", 422)],
)
def test_unknown_or_malformed_ids(
    api: Api, alice: User, operation_id: str, expected_status: int
) -> None:
    statuses = {
        path: api.client.request(
            method, path.format(id=operation_id), headers=alice.headers
        ).status_code
        for method, path in ID_ENDPOINTS
    }
    assert statuses == dict.fromkeys(statuses, expected_status)


def test_id_endpoints_need_a_token(api: Api) -> None:
    some_id = "0b5e2b6c-8f8e-4a4b-9f6a-1d2c3b4a5e6f"
    statuses = {
        path: api.client.request(method, path.format(id=some_id)).status_code
        for method, path in ID_ENDPOINTS
    }
    assert statuses == dict.fromkeys(statuses, 401)


def test_apply_and_rollback_while_the_cli_holds_the_lock_are_409(
    api: Api, tree: Path, alice: User
) -> None:
    from storage import locks

    op_id = api.started(alice, tree / "alice")
    record = operations.load(api.store, op_id)
    with locks.held(api.store, op_id, record.root, "apply"):  # as `fileorg apply` holds it
        applied = _post(api, alice, f"/api/v1/operations/{op_id}/apply")
        undone = _post(api, alice, f"/api/v1/operations/{op_id}/rollback")
    running = f"operation {op_id} is applying {record.root} (pid {os.getpid()} on "
    for response in (applied, undone):
        assert response.status_code == 409
        assert response.json()["detail"].startswith(running)
    assert api.fake.started[-1][0] == ORGANIZE  # nothing was started
    assert _post(api, alice, f"/api/v1/operations/{op_id}/apply").status_code == 202


def _ticket(parameters: dict[str, Any]) -> dict[str, Any]:
    """The claims of a run's ticket, signed with the test API's secret (tests.api.conftest)."""
    claims: dict[str, Any] = jwt.decode(
        parameters["ticket"], tickets.ticket_key("s" * 64), algorithms=["HS256"]
    )
    assert claims["op"] == parameters["operation_id"]
    return claims
