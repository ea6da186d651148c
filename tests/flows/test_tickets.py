"""Issue 12 point 4: a run created on the Prefect API without the service's ticket is refused.

The attack as it was made: `POST /api/deployments/<organize id>/create_flow_run` on a real
Prefect server, no login, with the parameters of an ungranted folder. The flow run is then
executed as a runner executes it (Prefect's engine, with the server's flow run).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.organize import organize_flow
from storage import operations, tickets
from storage.locations import DataStore
from storage.tickets import TicketError
from tests.polling import until
from tests.trees import snapshot

SECRET = "t" * 64


def _create_and_execute(prefect_server: str, parameters: dict[str, Any]) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow

    deployment_id = organize_flow.to_deployment(name="organize").apply()  # type: ignore[union-attr]

    def create() -> httpx.Response | None:
        made = httpx.post(
            f"{prefect_server}/deployments/{deployment_id}/create_flow_run",
            json={"parameters": parameters},
            timeout=60,
        )
        # 503: the server's database was busy (a CI run, load ~3); Prefect's own client
        # retries it, and so would the attacker.
        return None if made.status_code == 503 else made

    created = until(create, 60, "the server to take the run", every=0.5)
    assert created.status_code == 201, created.text

    async def read() -> Any:
        async with get_client() as client:
            return await client.read_flow_run(uuid.UUID(created.json()["id"]))

    flow_run = asyncio.run(read())
    with pytest.raises(TicketError) as refused:
        run_flow(organize_flow, flow_run=flow_run, parameters=flow_run.parameters)
    after = asyncio.run(read())
    assert after.state.type.value == "FAILED"
    return str(flow_run.id), str(refused.value)


@pytest.mark.parametrize("ticket", ["none", "for another root"])
def test_a_run_without_a_ticket_for_its_root_is_refused_and_recorded(
    prefect_server: str,
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ticket: str,
) -> None:
    monkeypatch.setenv("FILEORG_SECRET_KEY", SECRET)
    victim, granted = tmp_path / "victim", tmp_path / "granted"
    for folder in (victim, granted):
        (folder / "inbox").mkdir(parents=True)
        for i in range(5):
            (folder / "inbox" / f"note-{i}.txt").write_text(f"note {i}\n")
    before = snapshot(victim)
    op_id = str(uuid.uuid4())
    parameters: dict[str, Any] = {"operation_id": op_id, "root": str(victim), "dry_run": False}
    if ticket == "for another root":  # a real ticket, replayed with another root
        claims = {"kind": "organize", "op": op_id, "root": str(granted), "dry_run": False}
        parameters["ticket"] = tickets.sign(SECRET, {**claims, "owner": str(uuid.uuid4())})

    run_id, reason = _create_and_execute(prefect_server, parameters)

    assert ("no ticket" if ticket == "none" else "does not cover its root") in reason
    assert snapshot(victim) == before
    store = DataStore(str(data_dir))
    assert not operations.exists(store, op_id)  # not even a record: nothing was started
    refusals = [json.loads(p.read_text()) for p in (data_dir / "refusals").iterdir()]
    assert [(r["flow_run_id"], r["root"], r["reason"]) for r in refusals] == [
        (run_id, str(victim), reason)
    ]


def test_a_flow_called_here_has_no_deployment_and_asks_the_server_nothing(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's own call: no ticket needed, known from the engine's flow run (prefect.runtime
    asked the server for it, ~1 s of a loaded run)."""
    import prefect.runtime.deployment
    from prefect import flow

    from flows import authorize

    async def asked(flow_run_id: str) -> Any:
        raise AssertionError(f"asked the server for flow run {flow_run_id}")

    monkeypatch.setattr(prefect.runtime.deployment, "_get_flow_run", asked)

    @flow
    def called_here() -> Any:
        return authorize.authorize(DataStore(str(data_dir)), None, {"kind": "organize"})

    assert called_here() is None
