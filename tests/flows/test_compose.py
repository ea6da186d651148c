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


def _dockerfile_uv_syncs() -> list[list[str]]:
    """The `uv sync` commands of the Dockerfile's RUN steps, in order, as argument lists."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    steps = []
    for line in text.splitlines():
        if not line.startswith("RUN "):
            continue
        for command in line[len("RUN ") :].split("&&"):
            words = command.split()
            if words[:2] == ["uv", "sync"]:
                steps.append(words)
    return steps


def test_the_image_installs_from_the_lock_as_the_readme_does() -> None:
    """The image cannot drift from the tests: the README's uv, `--locked`, no dev group."""
    readme = (REPO / "README.md").read_text()
    dockerfile = (REPO / "Dockerfile").read_text()
    syncs = _dockerfile_uv_syncs()

    assert "pip install uv==0.13.9" in readme
    assert "pip install uv==0.13.9" in dockerfile
    assert "pip install ." not in dockerfile
    assert len(syncs) == 2, syncs
    assert all("--locked" in s and "--no-dev" in s for s in syncs), syncs


def test_the_image_install_steps_give_a_runnable_service(tmp_path: Path) -> None:
    """Run the Dockerfile's two `uv sync` steps as processes (no Docker engine here): the
    environment they build imports the API, the flows and Prefect, and holds no test tools."""
    build = tmp_path / "app"
    build.mkdir()
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(REPO / name, build / name)
    uv = REPO / ".venv" / "bin" / "uv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(build / ".venv")}
    env.pop("VIRTUAL_ENV", None)
    first, second = _dockerfile_uv_syncs()

    done = subprocess.run([str(uv), *first[1:]], cwd=build, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    for package in ("api", "flows", "tasks", "storage"):
        shutil.copytree(
            REPO / package, build / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    done = subprocess.run([str(uv), *second[1:]], cwd=build, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]

    python = build / ".venv" / "bin" / "python"
    probe = (
        "import importlib.util, api.main, flows.organize, prefect, uvicorn;"
        "print(importlib.util.find_spec('pytest') is None)"
    )
    ran = subprocess.run(
        [str(python), "-c", probe],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.strip() == "True"
    assert (build / ".venv" / "bin" / "fileorg").exists()
