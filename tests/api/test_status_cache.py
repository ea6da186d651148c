"""The status cache (api.cache, api.keeper) on SQLite and PostgreSQL, with the fake
orchestrator: events move a row through every state, a missed event is recovered by
confirmation, reads touch neither Prefect nor the data folder, and runs started by schedules
are operations of their owner (listed, 409 on overlap). Events go through the app's own hub
(api.events), as the Prefect subscription hands them over."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from api import keeper as keeper_module
from api.events import RESYNC
from api.keeper import keeper
from api.live import hub
from api.orchestrator import RunEvent, RunInfo, RunState
from storage import operations, tickets
from tests.api.conftest import Api, User
from tests.api.fakes import write_operation
from tests.polling import until

DEADLINE = 30.0


def _emit(api: Api, event: Any, run_id: str | None = None) -> None:
    app: Any = api.client.app
    api.client.portal.call(lambda: hub(app).dispatch(event, run_id))  # type: ignore[union-attr]


def _state(api: Api, run_id: str, status: str, deployment: str | None = None) -> None:
    event = RunEvent(run_id, "state", RunState(status), deployment=deployment)  # type: ignore[arg-type]
    _emit(api, event, run_id)


def _edge(api: Api, run_id: str, stage: str, edge: str) -> None:
    _emit(api, RunEvent(run_id, "progress", payload={"stage": stage, "state": edge}), run_id)


def _shown_when(api: Api, user: User, op_id: str, **expected: Any) -> dict[str, Any]:
    def seen() -> dict[str, Any] | None:
        shown = api.shown(user, op_id)
        return shown if all(shown.get(k) == v for k, v in expected.items()) else None

    last = lambda: str(api.shown(user, op_id))  # noqa: E731
    return until(seen, DEADLINE, f"{op_id} to show {expected}", detail=last)


def _listed(api: Api, user: User) -> dict[str, dict[str, Any]]:
    response = api.client.get("/api/v1/operations", headers=user.headers)
    assert response.status_code == 200, response.text
    return {o["id"]: o for o in response.json()["data"]}


@pytest.fixture
def by_events(api: Api) -> Api:
    """Runs that start pending, and a fake whose changes reach the app only as events."""
    api.fake.complete = False
    api.fake.begin = "pending"
    api.fake.changed = lambda: None
    return api


def test_events_move_the_cache_through_every_state(by_events: Api, tree: Path, alice: User) -> None:
    api = by_events
    op_id = api.started(alice, tree / "alice")
    run_id = api.shown(alice, op_id)["flow_run_id"]
    assert api.shown(alice, op_id)["status"] == "pending"

    _state(api, run_id, "running")
    _shown_when(api, alice, op_id, status="running", state=None)
    record = operations.OperationRecord(id=op_id, root=str(tree / "alice"), status="running")
    record.stage = "scan"
    operations.save(api.store, record)
    _edge(api, run_id, "scan", "started")
    _shown_when(api, alice, op_id, stage="scan", state="running")
    _state(api, run_id, "pending")  # late: a run never goes back
    api.fake.finish()  # Prefect: completed; the record: planned
    _state(api, run_id, "completed")
    done = _shown_when(api, alice, op_id, status="completed", state="planned")
    assert done["stages"]["scan"]["files"] == 5 and done["summary"]["moves"] == 4
    assert done["synced_at"] is not None

    applied = api.client.post(f"/api/v1/operations/{op_id}/apply", headers=alice.headers)
    assert applied.status_code == 202, applied.text
    applying = api.shown(alice, op_id)
    assert (applying["status"], applying["run"]) == ("pending", "apply")
    _state(api, applying["flow_run_id"], "running")
    _shown_when(api, alice, op_id, status="running")
    api.fake.finish()
    _state(api, applying["flow_run_id"], "completed")
    _shown_when(api, alice, op_id, status="completed", state="applied")

    undo = api.client.post(f"/api/v1/operations/{op_id}/rollback", headers=alice.headers)
    undo_id = undo.json()["operation_id"]
    api.fake.finish()
    _state(api, api.shown(alice, undo_id)["flow_run_id"], "completed")
    _shown_when(api, alice, undo_id, status="completed", state="rolled_back")
    assert api.shown(alice, op_id)["state"] == "rolled_back"  # the undone one's record too

    failing = api.started(alice, tree / "alice" / "photos")
    api.fake.finish("failed", "root vanished")
    _state(api, api.shown(alice, failing)["flow_run_id"], "failed")
    _shown_when(api, alice, failing, status="failed", error="root vanished")

    cancelled = api.started(alice, tree / "alice" / "photos")
    response = api.client.post(f"/api/v1/operations/{cancelled}/cancel", headers=alice.headers)
    assert response.json()["status"] == "cancelled"
    assert api.shown(alice, cancelled)["status"] == "cancelled"


def test_a_missed_event_is_recovered_by_confirmation(
    by_events: Api, tree: Path, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = by_events
    app: Any = api.client.app
    first = api.started(alice, tree / "alice" / "photos")
    api.fake.finish()  # no event: the row still says pending
    assert api.shown(alice, first)["status"] == "pending"  # a read asks nobody

    # The subscription was lost and is back (RESYNC): every live row is confirmed at once.
    _emit(api, RESYNC)
    _shown_when(api, alice, first, status="completed", state="planned")

    # No event at all: the sweep confirms a live row confirmed longer ago than the bound.
    second = api.started(alice, tree / "alice" / "photos")
    api.fake.finish()
    assert api.client.portal.call(lambda: keeper(app).sweep()) >= 0  # type: ignore[union-attr]
    assert api.shown(alice, second)["status"] == "pending"  # within the bound: left alone
    monkeypatch.setattr(keeper_module, "STALE_SECONDS", 0.0)
    api.client.portal.call(lambda: keeper(app).sweep())  # type: ignore[union-attr]
    assert api.shown(alice, second)["status"] == "completed"


def test_reads_touch_neither_prefect_nor_the_data_folder(api: Api, tree: Path, alice: User) -> None:
    op_id = api.started(alice, tree / "alice")
    before = api.shown(alice, op_id)
    assert before["state"] == "planned"
    api.fake.down = True
    api.store.remove(operations.record_path(api.store, op_id))

    assert api.shown(alice, op_id) == before
    assert _listed(api, alice)[op_id] == before


def test_finished_rows_are_re_read_in_time_and_updated_at_moves_only_with_a_change(
    api: Api, tree: Path, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    app: Any = api.client.app
    op_id = api.started(alice, tree / "alice")
    before = api.shown(alice, op_id)
    record = operations.load(api.store, op_id)
    record.summary["moves"] = 3  # changed from the command line, say
    operations.save(api.store, record)

    api.client.portal.call(lambda: keeper(app).sweep())  # type: ignore[union-attr]
    assert api.shown(alice, op_id) == before  # finished, confirmed just now: not re-read

    monkeypatch.setattr(keeper_module, "REBUILD_SECONDS", 0.0)
    api.client.portal.call(lambda: keeper(app).sweep())  # type: ignore[union-attr]
    after = api.shown(alice, op_id)
    assert after["summary"]["moves"] == 3 and after["updated_at"] > before["updated_at"]

    api.client.portal.call(lambda: keeper(app).sweep())  # type: ignore[union-attr]
    again = api.shown(alice, op_id)
    assert again["updated_at"] == after["updated_at"]  # confirmed, unchanged
    assert again["synced_at"] > after["synced_at"]


def test_rows_the_cache_never_filled_are_filled_by_the_sweep(
    api: Api, tree: Path, alice: User
) -> None:
    """Rows from before the migration: synced_at NULL, nothing cached."""
    import sqlalchemy as sa

    from api import db
    from api.models import Operation

    op_id = api.started(alice, tree / "alice")
    engine = sa.create_engine(db.sync_url(api.settings.resolved_database_url()))
    with engine.begin() as connection:
        blank = {"state": None, "stage": None, "stages": None, "summary": None, "synced_at": None}
        connection.execute(sa.update(Operation).values(**blank))
    engine.dispose()
    # Another connection's write: on PostgreSQL heard of by NOTIFY, a moment later.
    until(lambda: api.shown(alice, op_id)["state"] is None, DEADLINE, "the blanked row")

    api.settle()

    shown = api.shown(alice, op_id)
    assert (shown["state"], shown["summary"]["moves"]) == ("planned", 4)


# --- runs started by schedules ---------------------------------------------------------------


def _scheduled_run(api: Api, user: User, root: Path, forged: bool = False) -> RunInfo:
    """A run of the user's schedule on `root`, as Prefect would list it (running)."""
    body = {"root_path": str(root), "cron": "0 3 * * 0"}
    response = api.client.post("/api/v1/schedules", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    schedule = next(s for s in api.fake.schedule_list if s.id == response.json()["id"])
    parameters = dict(schedule.parameters)
    if forged:  # someone with Prefect access, without the service's key
        claims = {"kind": "schedule", "owner": user.id, "root": parameters["root"]}
        parameters["ticket"] = tickets.sign("x" * 64, claims, expires=False)
    run_id = str(uuid.uuid4())
    info = RunInfo(run_id, RunState("running"), schedule.id, schedule.slug, parameters)
    api.fake.runs[run_id] = RunState("running")
    api.fake.scheduled.append(info)
    return info


def test_a_scheduled_run_is_an_operation_of_its_owner(
    by_events: Api, tree: Path, alice: User
) -> None:
    api = by_events
    bob = api.signup("bob")
    run = _scheduled_run(api, alice, tree / "alice")

    _state(api, run.flow_run_id, "running", deployment="scheduled-cleanup")

    shown = _shown_when(api, alice, run.flow_run_id, status="running")
    assert (shown["schedule_id"], shown["root_path"]) == (run.schedule_id, str(tree / "alice"))
    assert shown["operation_type"] == "organize" and shown["dry_run"] is True
    assert run.flow_run_id in _listed(api, alice) and not _listed(api, bob)
    blocked = api.start(alice, tree / "alice" / "photos")
    assert blocked.status_code == 409, blocked.text
    assert "overlapping" in blocked.json()["detail"]

    # the flow writes the record under the run's id; Prefect says completed
    write_operation(api.store, run.flow_run_id, str(tree / "alice"), {}, dry_run=True)
    api.fake.runs[run.flow_run_id] = RunState("completed")
    _state(api, run.flow_run_id, "completed", deployment="scheduled-cleanup")
    _shown_when(api, alice, run.flow_run_id, status="completed", state="planned")
    assert api.start(alice, tree / "alice" / "photos").status_code == 202


def test_a_scheduled_run_whose_events_were_missed_is_found_by_the_sweep(
    by_events: Api, tree: Path, alice: User
) -> None:
    api = by_events
    app: Any = api.client.app
    run = _scheduled_run(api, alice, tree / "alice")
    forged = _scheduled_run(api, alice, tree / "alice" / "photos", forged=True)

    api.client.portal.call(lambda: keeper(app).sweep(adopt=True))  # type: ignore[union-attr]

    listed = _listed(api, alice)
    assert listed[run.flow_run_id]["schedule_id"] == run.schedule_id
    assert forged.flow_run_id not in listed  # its ticket is not the service's
    assert api.start(alice, tree / "alice").status_code == 409


def test_a_skipped_scheduled_run_leaves_no_operation(
    by_events: Api, tree: Path, alice: User
) -> None:
    """The schedule's previous run was still going: the run made no record (Skipped)."""
    api = by_events
    run = _scheduled_run(api, alice, tree / "alice")
    _state(api, run.flow_run_id, "running", deployment="scheduled-cleanup")
    _shown_when(api, alice, run.flow_run_id, status="running")

    api.fake.runs[run.flow_run_id] = RunState("completed")
    _state(api, run.flow_run_id, "completed", deployment="scheduled-cleanup")

    until(lambda: run.flow_run_id not in _listed(api, alice), DEADLINE, "the row to go")
