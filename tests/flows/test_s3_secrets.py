"""Credentials never leak: not in logs, manifests, reports, API responses, flow-run parameters,
Prefect logs or artifacts.

One organize dry run of a small bucket, started through the API (an orchestrator that runs the
real flow in this process, under the session's Prefect server), with every logger at DEBUG
(s3fs and botocore included) recording into one handler. Then everything a person could read
is collected, place by place, and searched for the profile's secret and access key id.

botocore logs each request's headers at DEBUG, and the Authorization header names the access
key id (never the secret key): storage.objects redacts it there, with any session token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import db
from api.config import get_settings as get_api_settings
from api.main import create_app
from api.orchestrator import ORGANIZE, OrchestratorError, RunState, map_state
from flows.organize import organize_flow
from storage.objects import ObjectStore, parse_object_url
from storage.settings import get_settings
from tests.api.conftest import PASSWORD, settings_for
from tests.conftest import S3Env
from tests.polling import until
from tests.s3proxy import add_profile

SECRET = "fileorg-test-secret-do-not-log"
KEY_ID = "AKIAFILEORGTEST"
TOKEN = "IQoJb3JpZ2luX2VjE/fileorg+test-token/do-not-log=="  # STS tokens hold / + =
ROOT = "s3://media/photos"
OBJECTS = {
    "photos/a/cat.jpg": b"\xff\xd8\xff\xe0same",
    "photos/b/cat copy.jpg": b"\xff\xd8\xff\xe0same",
    "photos/2019-04-12 été.txt": b"hello",
    "photos/empty": b"",
}
# Where the key id may show: this test's own S3 server (moto, werkzeug), which an installation
# does not run.
SIGNING_LOGGERS = ("moto", "werkzeug")
BIN = Path(sys.executable).parent


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.records.append((record.name, record.levelno, text))


@contextmanager
def everything_logged() -> Iterator[Recorder]:
    """Every logger, existing or created meanwhile, at DEBUG into one recorder (loggers that do
    not propagate, such as Prefect's, get the recorder themselves)."""
    recorder = Recorder()
    for name in ("botocore", "aiobotocore", "s3fs", "fsspec", "urllib3", "api", "prefect"):
        logging.getLogger(name)
    root = logging.getLogger()
    loggers = [root] + [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    saved = [(lg, lg.level, lg.disabled) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.disabled = False
        if lg is root or not lg.propagate:
            lg.addHandler(recorder)
    try:
        yield recorder
    finally:
        for lg, level, disabled in saved:
            lg.setLevel(level)
            lg.disabled = disabled
            lg.removeHandler(recorder)


class InProcessOrchestrator:
    """Runs an organize deployment here, as a worker would: the real flow on the real bucket."""

    def __init__(self) -> None:
        self.states: dict[str, Any] = {}

    async def start(self, deployment: str, parameters: dict[str, Any]) -> str:
        assert deployment == ORGANIZE
        state = await asyncio.to_thread(organize_flow, **parameters, return_state=True)
        run_id = str(state.state_details.flow_run_id)
        self.states[run_id] = state
        return run_id

    async def state(self, flow_run_id: str) -> RunState:
        state = self.states[flow_run_id]
        return map_state(state.type.value, state.message)

    async def cancel(self, flow_run_id: str) -> None:
        raise OrchestratorError("not supported here")

    async def version(self) -> str:
        return "in-process"


@dataclass
class Evidence:
    """Everything readable after the run, by place: (where exactly, text) pairs."""

    places: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    records: list[tuple[str, int, str]] = field(default_factory=list)
    flow_run: Any = None
    operation_id: str = ""
    endpoint: str = ""

    def add(self, place: str, where: str, text: str) -> None:
        self.places.setdefault(place, []).append((where, text))


PLACES = [
    "log records",
    "data folder",
    "api responses",
    "prefect flow run",
    "prefect task runs",
    "prefect logs",
    "prefect artifacts",
]


def _api_reads(client: TestClient, evidence: Evidence, root: str) -> None:
    signup = {"email": "admin@example.org", "username": "admin", "password": PASSWORD}
    tokens = client.post("/api/v1/auth/signup", json=signup).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    me = client.get("/api/v1/auth/me", headers=headers).json()
    granted = client.post(
        f"/api/v1/admin/users/{me['id']}/roots", json={"root": root}, headers=headers
    )
    assert granted.status_code == 201, granted.text
    started = client.post("/api/v1/operations", json={"root_path": root}, headers=headers)
    assert started.status_code == 202, started.text
    op_id = started.json()["operation_id"]
    evidence.operation_id = op_id
    for path in (
        "/api/v1/auth/me",
        "/api/v1/admin/users",
        f"/api/v1/admin/users/{me['id']}/roots",
        "/api/v1/operations",
        f"/api/v1/operations/{op_id}",
        f"/api/v1/operations/{op_id}/report",
        f"/api/v1/operations/{op_id}/plan",
        f"/api/v1/operations/{op_id}/duplicates",
        f"/api/v1/files?operation_id={op_id}",
    ):
        response = client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.text)
        evidence.add("api responses", path, response.text)


def _prefect_reads(evidence: Evidence, flow_run_id: uuid.UUID) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    async def read() -> None:
        async with get_client() as client:
            only = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            (run,) = await client.read_flow_runs(flow_run_filter=only)
            evidence.flow_run = run
            evidence.add("prefect flow run", run.name, run.model_dump_json())
            for task_run in await client.read_task_runs(flow_run_filter=only):
                evidence.add("prefect task runs", task_run.name, task_run.model_dump_json())
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )
            for artifact in artifacts:
                evidence.add("prefect artifacts", str(artifact.key), artifact.model_dump_json())

    async def read_logs() -> list[Any]:
        async with get_client() as client:
            only = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            return list(await client.read_logs(only))

    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    asyncio.run(read())
    # Logs travel to the server in the background: drained above, and the server may still
    # be writing them.
    logs = until(lambda: asyncio.run(read_logs()), 15, "the run's logs on the server", every=0.25)
    for log in logs:
        evidence.add("prefect logs", log.name, log.message)


@pytest.fixture(scope="module")
def evidence(
    moto_server: str, prefect_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Evidence]:
    """The run and everything readable after it (module scope: the `s3` and `data_dir`
    fixtures' set-up, done here once)."""
    tmp = tmp_path_factory.mktemp("secrets")
    data = tmp / "data"
    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"))
    env = S3Env(moto_server, KEY_ID, SECRET)
    env.bucket("media")
    for key, body in OBJECTS.items():
        env.client().put_object(Bucket="media", Key=key, Body=body)
    profile = {"endpoint_url": moto_server, "key": KEY_ID, "secret": SECRET, "max_attempts": 2}
    database = f"sqlite:///{tmp}/api.db"
    db.upgrade(database)
    app = create_app(orchestrator=InProcessOrchestrator())
    app.dependency_overrides[get_api_settings] = lambda: settings_for(database)
    found = Evidence(endpoint=moto_server)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FILEORG_PROFILES", json.dumps({"s3": profile}))
        mp.setenv("FILEORG_DATA_URL", str(data))
        get_settings.cache_clear()
        try:
            with everything_logged() as recorder, TestClient(app) as client:
                _api_reads(client, found, ROOT)
        finally:
            get_settings.cache_clear()
    found.records = recorder.records
    for name, _, text in recorder.records:
        found.add("log records", name, text)
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        found.add("data folder", str(path.relative_to(data)), path.read_bytes().decode("latin-1"))
    (state,) = app.state.orchestrator.states.values()
    _prefect_reads(found, state.state_details.flow_run_id)
    yield found


@pytest.mark.parametrize("place", PLACES)
def test_the_secret_key_is_nowhere(evidence: Evidence, place: str) -> None:
    found = evidence.places.get(place, [])

    assert found, f"nothing was collected from {place}: the check would prove nothing"
    assert [where for where, text in found if SECRET in text] == []


@pytest.mark.parametrize("place", PLACES)
def test_the_access_key_id_is_only_in_botocore_request_logs(evidence: Evidence, place: str) -> None:
    found = evidence.places.get(place, [])
    if place == "log records":
        found = [(name, text) for name, text in found if not name.startswith(SIGNING_LOGGERS)]

    assert [where for where, text in found if KEY_ID in text] == []


def test_debug_logs_of_s3fs_and_botocore_were_recorded(evidence: Evidence) -> None:
    """The searches above looked at the chattiest logs there are, not at an empty capture."""
    debug = {name.split(".")[0] for name, level, _ in evidence.records if level == logging.DEBUG}

    assert {"botocore", "s3fs", "prefect"} <= debug


def test_flow_run_parameters_name_the_root_and_nothing_else(evidence: Evidence) -> None:
    run = evidence.flow_run
    parameters = run.parameters

    # what the API authorized (issue 12: the root's identity, whose grant and when, and the
    # ticket it signed over all of it), and still no profile, key or secret
    assert set(parameters) == {
        *("operation_id", "root", "options", "dry_run"),
        *("root_identity", "owner", "authorized_at", "ticket"),
    }
    assert (parameters["operation_id"], parameters["root"]) == (evidence.operation_id, ROOT)
    assert evidence.endpoint not in json.dumps(parameters)  # the profile stays on the worker
    assert SECRET not in json.dumps(parameters) and KEY_ID not in json.dumps(parameters)
    assert SECRET not in run.name and KEY_ID not in run.name


def test_the_report_is_the_buckets(evidence: Evidence) -> None:
    (report,) = [t for w, t in evidence.places["api responses"] if w.endswith("/report")]

    assert (json.loads(report)["files"], json.loads(report)["root"]) == (len(OBJECTS), ROOT)


def test_profiles_command_shows_no_credentials(s3: S3Env) -> None:
    done = subprocess.run(
        [str(BIN / "fileorg"), "profiles", "--json"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    plain = subprocess.run(
        [str(BIN / "fileorg"), "profiles"], env=dict(os.environ), capture_output=True, text=True
    )

    assert done.returncode == plain.returncode == 0, done.stderr + plain.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert set(rows) == {"s3", "r2"}
    expected_r2 = {
        "name": "r2",
        "endpoint_url": s3.endpoint,
        "region": "us-east-1",
        "credentials": "configured",
        "conditional_writes": True,
    }
    assert rows["r2"] == expected_r2
    for output in (done.stdout, done.stderr, plain.stdout, plain.stderr):
        assert SECRET not in output and KEY_ID not in output


def test_a_session_token_is_not_logged_even_at_debug(
    s3: S3Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session token is a credential (unlike the key id), and botocore logs it at DEBUG."""
    s3.bucket("media")
    add_profile(monkeypatch, "temporary", token=TOKEN)

    with everything_logged() as recorder:
        ObjectStore(parse_object_url("temporary://media/photos")).check()

    assert recorder.records
    assert [name for name, _, text in recorder.records if TOKEN in text] == []
