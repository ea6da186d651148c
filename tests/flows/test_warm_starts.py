"""flows.warm_starts: what it relies on in Prefect and in the flows' imports (the runner's runs
are checked end to end in tests/api/test_interrupted_flow.py: forked, killed, undone)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flows import warm_starts


def test_prefect_still_spawns_the_runs_it_starts() -> None:
    # What use_forkserver replaces; after an upgrade that changes it, runs would start cold.
    assert warm_starts.spawns_cold()


def test_importing_the_flows_starts_no_thread() -> None:
    # The forkserver imports them and then forks: a thread there would be lost in each fork,
    # with whatever locks it held.
    script = f"import threading\nimport {', '.join(warm_starts.PRELOAD)}\n"
    script += "print(threading.active_count())"
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "1"


def test_the_forked_context_is_the_only_context_prefect_sees() -> None:
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    forking = warm_starts._Forking(context)
    assert forking.get_context("spawn") is context
    assert forking.cpu_count is multiprocessing.cpu_count  # the rest is multiprocessing's


def test_the_forkserver_makes_the_tls_context_before_any_fork() -> None:
    # Each run's Prefect clients then share the one it inherits (flows.prefect_costs).
    script = f"import {', '.join(warm_starts.PRELOAD)}\nfrom flows import prefect_costs\n"
    script += "print(len(prefect_costs._shared._contexts))"
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "1"


def test_a_runs_context_and_environment_are_made_again_only_when_settings_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect import flow_engine
    from prefect.context import serialize_context
    from prefect.settings import PREFECT_LOGGING_LEVEL, temporary_settings
    from prefect.settings.context import get_current_settings

    for name in ("serialize_context", "get_current_settings"):  # put back after the test
        monkeypatch.setattr(flow_engine, name, getattr(flow_engine, name))
    warm_starts.keep_run_preparation()

    def environment() -> dict[str, str]:
        found: dict[str, str] = flow_engine.get_current_settings().to_environment_variables(
            exclude_unset=True
        )
        return found

    first = flow_engine.serialize_context()
    assert first == serialize_context()
    assert flow_engine.serialize_context()["settings_context"] is first["settings_context"]
    assert environment() == get_current_settings().to_environment_variables(exclude_unset=True)
    with temporary_settings({PREFECT_LOGGING_LEVEL: "ERROR"}):  # other settings: made again
        assert flow_engine.serialize_context() == serialize_context() != first
        assert environment()["PREFECT_LOGGING_LEVEL"] == "ERROR"
        assert environment() == get_current_settings().to_environment_variables(exclude_unset=True)
    assert flow_engine.serialize_context() == first
