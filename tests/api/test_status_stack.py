"""The status cache on the real stack, on SQLite and PostgreSQL: the API's own Prefect event
subscription keeps the row of a real run current through its states (the sweep's bound is
pushed out of reach, so only events and the terminal confirmation can), a terminal event the
API missed is recovered by confirming against Prefect, and a run a schedule started (run by
the runner as Prefect would at its time) is an operation of the schedule's owner."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from api import db
from api import keeper as keeper_module
from api.keeper import keeper
from api.live import hub
from api.models import Operation
from tests.api.conftest import Api, User
from tests.api.stack import (
    DEADLINE,
    dry_run_started,
    finished,
    make_tree,
    shown_when,
)
from tests.polling import until


def _seen_until_done(api: Api, user: User, op_id: str) -> list[tuple[str, str | None]]:
    """(status, stage) as the list shows them, every change, until the run ends."""
    seen: list[tuple[str, str | None]] = []

    def ended() -> bool:
        listed = api.client.get("/api/v1/operations", headers=user.headers).json()["data"]
        shown = next(o for o in listed if o["id"] == op_id)
        now = (shown["status"], shown["stage"])
        if not seen or seen[-1] != now:
            seen.append(now)
        return shown["status"] in ("completed", "failed", "cancelled")

    until(ended, DEADLINE, f"{op_id} to end", every=0.05, detail=lambda: str(seen))
    return seen


def _lose_the_end(api: Api, op_id: str) -> None:
    """As if the terminal event never came: the row says running, confirmed long ago."""
    engine = sa.create_engine(db.sync_url(api.settings.resolved_database_url()))
    old = datetime(2020, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            sa.update(Operation)
            .where(Operation.id == uuid.UUID(op_id))
            .values(status="running", state="running", synced_at=old)
        )
    engine.dispose()


def _run_now(schedule_id: str) -> str:
    """Move the first run Prefect made for the schedule to now: the runner starts it."""
    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    async def move() -> str:
        async with get_client() as client:
            runs = [
                r
                for r in await client.read_flow_runs()
                if r.created_by and str(r.created_by.id) == schedule_id
            ]
            first = min(runs, key=lambda r: r.expected_start_time or datetime.max)
            now = Scheduled(scheduled_time=datetime.now(UTC))
            await client.set_flow_run_state(first.id, now, force=True)
            return str(first.id)

    return asyncio.run(move())


def test_the_cache_follows_real_runs(
    make_api: Any,
    runner: subprocess.Popen[bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(keeper_module, "STALE_SECONDS", 3600.0)  # no sweep: events only
    root = tmp_path / "photos"
    make_tree(root)
    api, admin, op_id = dry_run_started(make_api, root)
    app: Any = api.client.app
    until(lambda: hub(app).live, DEADLINE, "the API's Prefect event subscription")

    seen = _seen_until_done(api, admin, op_id)

    statuses = [s for s, _ in seen]
    rank = {"pending": 0, "running": 1, "completed": 2}
    assert [rank[s] for s in statuses] == sorted(rank[s] for s in statuses), seen
    assert statuses[-1] == "completed" and "running" in statuses, seen
    done = api.shown(admin, op_id)
    assert done["state"] == "planned", done
    assert set(done["stages"]) >= {"scan", "classify", "plan", "report"}, done
    assert done["stages"]["scan"]["files"] == 4 and done["summary"], done

    # A missed terminal event: the sweep (bound back to normal) confirms with Prefect.
    _lose_the_end(api, op_id)
    # Another connection's write: on PostgreSQL the API hears of it by NOTIFY, a moment later
    # (api/changes.py), so the read cache may answer from before it until then.
    until(lambda: api.shown(admin, op_id)["status"] == "running", DEADLINE, "the lost end")
    monkeypatch.setattr(keeper_module, "STALE_SECONDS", 30.0)
    api.client.portal.call(lambda: keeper(app).sweep())  # type: ignore[union-attr]
    assert (api.shown(admin, op_id)["status"], api.shown(admin, op_id)["state"]) == (
        "completed",
        "planned",
    )

    # A schedule's run, started by the runner at its time, is admin's operation.
    other = tmp_path / "inbox"
    make_tree(other)
    api.grant(admin, admin, other)
    body = {"root_path": str(other), "cron": "0 3 * * 0"}

    def created() -> dict[str, Any] | None:
        response = api.client.post("/api/v1/schedules", json=body, headers=admin.headers)
        assert response.status_code in (201, 503), response.text
        return response.json() if response.status_code == 201 else None

    schedule = until(created, DEADLINE, "the scheduled-cleanup deployment", every=0.5)
    run_id = _run_now(schedule["id"])
    shown = shown_when(api, admin, run_id, "the scheduled run", lambda o: "id" in o)
    assert (shown["schedule_id"], shown["root_path"]) == (schedule["id"], str(other))
    ended = finished(api, admin, run_id)
    assert ended["state"] == "planned" and ended["stages"]["scan"]["files"] == 4, ended
    listed = api.client.get("/api/v1/operations", headers=admin.headers).json()["data"]
    # (the starts refused while the runner was registering are rows too: failed)
    assert {o["id"] for o in listed if o["status"] == "completed"} == {op_id, run_id}
    api.client.delete(f"/api/v1/schedules/{schedule['id']}", headers=admin.headers)
