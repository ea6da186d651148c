"""WS /ws/operations/{id}: refusals against the app with a fake orchestrator, then a real run
followed by a real WebSocket client through uvicorn, a Prefect server and a runner."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from api import fanout
from api.live import hub
from api.orchestrator import RunEvent, RunState
from tests.api.conftest import PASSWORD, Api
from tests.api.stack import RUNNER, free_port, running, started
from tests.polling import until

DEADLINE = 90.0
FILES = 3000
STATUS_ORDER = {"pending": 0, "running": 1, "completed": 2, "failed": 2, "cancelled": 2}


# --- refusals and a finished run, with the fake orchestrator (TestClient) -------------------


def _received(api: Api, path: str, **kwargs: Any) -> tuple[list[dict[str, Any]], int | None]:
    messages = []
    with api.client.websocket_connect(path, **kwargs) as ws:
        try:
            while True:
                messages.append(ws.receive_json())
        except WebSocketDisconnect as closed:
            return messages, closed.code
    return messages, None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("who", "expected_code"),
    [
        ("nobody", 4401),
        ("bad-token", 4401),
        ("logged-out", 4401),
        ("other-user", 4404),
        ("unknown-id", 4404),
    ],
)
def test_refused_sockets_close_with_a_documented_code(
    api: Api, tree: Path, who: str, expected_code: int
) -> None:
    admin = api.signup("admin")
    bob = api.signup("bob")
    api.grant(admin, admin, tree / "alice")
    op_id = api.started(admin, tree / "alice")
    if who == "logged-out":
        api.client.post("/api/v1/auth/logout", json={"refresh_token": admin.refresh})
    headers = {
        "nobody": {},
        "bad-token": {"Authorization": "Bearer not-a-token"},
        "logged-out": admin.headers,
        "other-user": bob.headers,
        "unknown-id": admin.headers,
    }[who]
    target = "00000000-0000-0000-0000-000000000000" if who == "unknown-id" else op_id

    messages, code = _received(api, f"/ws/operations/{target}", headers=headers)

    assert (messages, code) == ([], expected_code)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_finished_operation_sends_its_state_and_done_at_once(api: Api, tree: Path) -> None:
    admin = api.signup("admin")
    api.grant(admin, admin, tree / "alice")
    op_id = api.started(admin, tree / "alice")  # the fake finishes its runs at once
    token = admin.access

    messages, code = _received(api, f"/ws/operations/{op_id}", subprotocols=["bearer", token])

    report = api.client.get(f"/api/v1/operations/{op_id}/report", headers=admin.headers)
    assert [m["type"] for m in messages] == ["state", "done"]
    assert messages[0]["status"] == "completed"
    assert messages[1]["report"] == report.json()
    assert code == 1000


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_done_carries_a_report_whose_names_are_not_utf8(api: Api, tree: Path) -> None:
    admin = api.signup("admin")
    api.grant(admin, admin, tree / "alice")
    op_id = api.started(admin, tree / "alice")
    op_dir = api.store.operation_dir(op_id)
    built = json.loads(api.store.read_bytes(f"{op_dir}/report.json"))
    built["errors"] = {"count": 1, "items": [{"path": os.fsdecode(b"caf\xe9.bin"), "error": "x"}]}
    api.store.write_bytes(f"{op_dir}/report.json", json.dumps(built).encode())

    messages, code = _received(
        api, f"/ws/operations/{op_id}", subprotocols=["bearer", admin.access]
    )

    # the socket was dropped before `done` (1006): the report could not be made JSON
    assert [m["type"] for m in messages] == ["state", "done"]
    assert messages[1]["report"]["errors"]["items"][0]["path"] == "caf\\xe9.bin"
    assert code == 1000


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_token_in_the_url_is_not_accepted(api: Api, tree: Path) -> None:
    admin = api.signup("admin")
    api.grant(admin, admin, tree / "alice")
    op_id = api.started(admin, tree / "alice")

    try:
        messages, code = _received(api, f"/ws/operations/{op_id}?token={admin.access}")
    except WebSocketDenialResponse:  # pragma: no cover - either way, nothing is sent
        messages, code = [], 4401

    assert (messages, code) == ([], 4401)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sockets_on_one_run_get_the_same_frames_each_serialized_once(
    api: Api, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[str] = []
    real = fanout.encode
    monkeypatch.setattr(fanout, "encode", lambda m: encoded.append(m["type"]) or real(m))
    api.fake.complete, api.fake.begin = False, "pending"
    admin = api.signup("admin")
    api.grant(admin, admin, tree / "alice")
    op_id = api.started(admin, tree / "alice")
    run_id = api.shown(admin, op_id)["flow_run_id"]
    app: Any = api.client.app
    path = f"/ws/operations/{op_id}"

    def emit(event: RunEvent) -> None:
        api.client.portal.call(lambda: hub(app).dispatch(event, run_id))  # type: ignore[union-attr]

    with (
        api.client.websocket_connect(path, headers=admin.headers) as a,
        api.client.websocket_connect(path, headers=admin.headers) as b,
        api.client.websocket_connect(path, headers=admin.headers) as c,
    ):
        sockets = (a, b, c)
        frames: list[list[str]] = [[ws.receive_text()] for ws in sockets]  # pending
        api.fake.runs[run_id] = RunState("running")  # as Prefect has it when its event comes
        emit(RunEvent(run_id, "state", RunState("running")))
        for files in (10, 20):
            frames_before = [len(f) for f in frames]
            emit(RunEvent(run_id, "progress", payload={"stage": "scan", "files_done": files}))
            for ws, into, before in zip(sockets, frames, frames_before, strict=True):
                while len(into) < before + 1 or json.loads(into[-1])["type"] != "progress":
                    into.append(ws.receive_text())
        api.fake.finish()
        emit(RunEvent(run_id, "state", RunState("completed")))
        for ws, into in zip(sockets, frames, strict=True):
            with pytest.raises(WebSocketDisconnect) as closed:
                while True:
                    into.append(ws.receive_text())
            assert closed.value.code == 1000

    assert frames[0] == frames[1] == frames[2]
    types = [json.loads(f)["type"] for f in frames[0]]
    assert types[0] == "state" and types[-2:] == ["state", "done"]
    assert types.count("progress") == 2
    assert encoded == types  # once per message, not once per socket


# --- the real stack -------------------------------------------------------------------------


@dataclass
class Stack:
    base: str
    ws: str
    data: Path
    client: httpx.Client

    def signup(self, name: str) -> dict[str, str]:
        body = {"email": f"{name}@example.org", "username": name, "password": PASSWORD}
        response = self.client.post("/api/v1/auth/signup", json=body)
        assert response.status_code == 201, response.text
        token = response.json()["access_token"]
        me = self.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        return {"id": me.json()["id"], "token": token}


def stack_env(prefect_server: str, data: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "FILEORG_DATA_URL": str(data),
        "FILEORG_DATABASE_URL": f"sqlite:///{data}/api.db",
        "FILEORG_SECRET_KEY": "k" * 64,
        "FILEORG_ENVIRONMENT": "test",
        "FILEORG_ARGON2_TIME_COST": "1",
        "FILEORG_ARGON2_MEMORY_KIB": "256",
        "FILEORG_RUNNER_POLL_SECONDS": "0.5",
    }


@pytest.fixture(scope="module")
def stack(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """uvicorn serving the API and a runner serving the deployments, on the session's server."""
    data = tmp_path_factory.mktemp("stack")
    port = free_port()
    uvicorn = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port)]
    commands = [RUNNER, [*uvicorn, "--no-access-log"]]
    base = f"http://127.0.0.1:{port}"
    env = stack_env(prefect_server, data)
    with (
        running(*commands, env=env, log=data / "stack.log"),
        httpx.Client(base_url=base, timeout=30) as client,
    ):

        def healthy() -> bool:
            try:
                return client.get("/health").status_code == 200
            except httpx.TransportError:
                return False

        until(healthy, DEADLINE, "the API", every=0.2)
        yield Stack(base, f"ws://127.0.0.1:{port}", data, client)


def _tree(root: Path, files: int) -> None:
    for i in range(files):
        folder = root / f"d{i % 30}"
        folder.mkdir(parents=True, exist_ok=True)
        # a few hundred duplicates among them
        (folder / f"f{i}.txt").write_bytes(f"content {i % (files - 300)}\n".encode())


def _follow(ws: ClientConnection) -> tuple[list[dict[str, Any]], int | None]:
    messages = []
    try:
        while True:
            messages.append(json.loads(ws.recv(timeout=DEADLINE)))
    except ConnectionClosed:
        return messages, ws.close_code


def _started(stack: Stack, token: str, root: Path) -> str:
    headers = {"Authorization": f"Bearer {token}"}
    body = {"root_path": str(root)}
    return started(lambda: stack.client.post("/api/v1/operations", json=body, headers=headers))


def test_a_client_follows_a_real_run_to_its_end(stack: Stack, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    _tree(root, FILES)
    admin = stack.signup(f"admin{os.getpid()}")
    headers = {"Authorization": f"Bearer {admin['token']}"}
    granted = stack.client.post(
        f"/api/v1/admin/users/{admin['id']}/roots", json={"root": str(root)}, headers=headers
    )
    assert granted.status_code == 201, granted.text
    op_id = _started(stack, admin["token"], root)
    url = f"{stack.ws}/ws/operations/{op_id}"

    with connect(url, additional_headers=headers) as ws:
        messages, code = _follow(ws)

    states = [m["status"] for m in messages if m["type"] == "state"]
    ranks = [STATUS_ORDER[s] for s in states]
    assert ranks == sorted(ranks), states
    assert "running" in states
    assert states[-1] == "completed"
    progress = [m for m in messages if m["type"] == "progress"]
    assert {m["stage"] for m in progress} >= {"scan", "classify", "plan"}
    for stage in {m["stage"] for m in progress}:
        counts = [(m["files_done"], m["bytes_done"]) for m in progress if m["stage"] == stage]
        assert counts == sorted(counts), (stage, counts)
        said = [m["stage_state"] for m in progress if m["stage"] == stage]
        assert said[0] == "started" and said[-1] == "finished", (stage, said)
    assert "report" in {m["stage"] for m in progress}
    scanned = [m for m in progress if m["stage"] == "scan" and m["stage_state"] == "finished"]
    assert scanned[-1]["files_done"] == FILES
    assert messages[-1]["type"] == "done"
    assert code == 1000
    report = stack.client.get(f"/api/v1/operations/{op_id}/report", headers=headers).json()
    shown = stack.client.get(f"/api/v1/operations/{op_id}", headers=headers).json()
    assert messages[-1]["report"] == report
    assert messages[-1]["summary"] == shown["summary"]
    assert report["duplicates"]["groups"] == 300

    # Another user is refused; a client arriving after the end gets the final state at once.
    bob = stack.signup(f"bob{os.getpid()}")
    with connect(url, subprotocols=[Subprotocol("bearer"), Subprotocol(bob["token"])]) as ws:
        assert _follow(ws) == ([], 4404)
    started = time.monotonic()
    with connect(url, subprotocols=[Subprotocol("bearer"), Subprotocol(admin["token"])]) as ws:
        assert ws.subprotocol == "bearer"
        late, late_code = _follow(ws)
    assert time.monotonic() - started < 2
    assert [m["type"] for m in late] == ["state", "done"]
    assert late[0]["status"] == "completed"
    assert (late[1]["report"], late_code) == (report, 1000)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_stage_started_again_at_0_reaches_the_socket(api: Api, tree: Path) -> None:
    """A channel drops a stage's counts that go backwards (late or replayed events); it also
    dropped a genuine new start of the same stage, which begins at 0 after its `started` (the
    operation's next run, in a long-lived API process): the socket got nothing more of that
    stage. A `started` begins the counts again; within one start they still never go back."""
    api.fake.complete, api.fake.begin = False, "pending"
    admin = api.signup("admin")
    api.grant(admin, admin, tree / "alice")
    op_id = api.started(admin, tree / "alice")
    run_id = api.shown(admin, op_id)["flow_run_id"]
    app: Any = api.client.app

    def emit(state: str, files: int) -> None:
        payload = {"stage": "scan", "state": state, "files_done": files, "bytes_done": files}
        event = RunEvent(run_id, "progress", payload=payload)
        api.client.portal.call(lambda: hub(app).dispatch(event, run_id))  # type: ignore[union-attr]

    got: list[tuple[str, int]] = []
    with api.client.websocket_connect(f"/ws/operations/{op_id}", headers=admin.headers) as ws:
        assert json.loads(ws.receive_text())["type"] == "state"  # pending: the run is followed
        api.fake.runs[run_id] = RunState("running")
        api.client.portal.call(  # type: ignore[union-attr]
            lambda: hub(app).dispatch(RunEvent(run_id, "state", RunState("running")), run_id)
        )
        assert json.loads(ws.receive_text())["status"] == "running"
        for state, files in [("started", 0), ("running", 10), ("running", 5), ("finished", 10)]:
            emit(state, files)
            if (state, files) != ("running", 5):  # backwards within one start: dropped
                shown = json.loads(ws.receive_text())
                got.append((shown["stage_state"], shown["files_done"]))
        for state, files in [("started", 0), ("running", 4), ("finished", 4)]:
            emit(state, files)  # not waited for: without the fix none comes
        api.fake.finish()
        api.client.portal.call(  # type: ignore[union-attr]
            lambda: hub(app).dispatch(RunEvent(run_id, "state", RunState("completed")), run_id)
        )
        with pytest.raises(WebSocketDisconnect):
            while True:
                shown = json.loads(ws.receive_text())
                if shown["type"] == "progress":
                    got.append((shown["stage_state"], shown["files_done"]))

    assert got == [
        ("started", 0),
        ("running", 10),
        ("finished", 10),
        ("started", 0),
        ("running", 4),
        ("finished", 4),
    ]
