"""docker-compose.yml and the Dockerfile, validated without a Docker engine.

`docker-compose config` (Debian's docker-compose) parses, interpolates and validates the file;
the services themselves run as plain processes in test_serve and tests/api/test_ws.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXPECTED_SERVICES = {
    "postgres",
    "postgres-init",
    "prefect-server",
    "deploy",
    "worker",
    "api",
    "minio",
}


def _compose_config(**env: str) -> subprocess.CompletedProcess[bytes]:
    tool = shutil.which("docker-compose")
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose is required in CI (apt-get install docker-compose)")
        pytest.skip("docker-compose is not installed")
    clean = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    return subprocess.run(
        [tool, "config"], cwd=REPO, env={**clean, **env}, capture_output=True, timeout=60
    )


def _config() -> dict[str, Any]:
    done = _compose_config(SECRET_KEY="s" * 48)
    assert done.returncode == 0, done.stderr.decode()
    loaded: dict[str, Any] = yaml.safe_load(done.stdout)
    return loaded


def test_compose_declares_the_stack_on_postgresql() -> None:
    services = _config()["services"]

    assert set(services) == EXPECTED_SERVICES
    prefect_db = services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert prefect_db.startswith("postgresql+asyncpg://")
    assert services["api"]["environment"]["DATABASE_URL"].startswith("postgresql://")
    assert services["api"]["environment"]["SECRET_KEY"] == "s" * 48
    assert services["worker"]["environment"]["SECRET_KEY"] == "s" * 48  # checks the tickets


def test_the_worker_serves_the_pool_prefect_yaml_deploys_to() -> None:
    services = _config()["services"]
    prefect_yaml = yaml.safe_load((REPO / "prefect.yaml").read_text())
    pools = {d["work_pool"]["name"] for d in prefect_yaml["deployments"]}

    command = services["worker"]["command"]

    assert pools == {command[command.index("--pool") + 1]}
    for name in ("worker", "api", "deploy"):
        assert services[name]["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"


def test_compose_refuses_to_run_without_a_secret_key() -> None:
    done = _compose_config()

    assert done.returncode != 0
    assert b"SECRET_KEY" in done.stderr


def test_the_image_holds_every_package() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    packages = ("api", "flows", "tasks", "storage")

    copied = {p for p in packages if f"COPY {p} ./{p}" in dockerfile}

    assert copied == set(packages)


def test_the_prefect_server_is_published_on_loopback_only() -> None:
    """The Prefect API has no login (issue 12 #4): the host publishes it on 127.0.0.1 only."""
    ports = _config()["services"]["prefect-server"]["ports"]

    assert ports, "the Prefect UI should stay reachable from the host itself"
    for port in ports:
        shown = port if isinstance(port, str) else f"{port.get('host_ip')}:{port['published']}"
        assert shown.startswith("127.0.0.1:"), ports
