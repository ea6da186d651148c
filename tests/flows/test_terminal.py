"""Unit tests of flows.cli.terminal (the real-terminal behaviour is in test_interrupt.py)."""

from __future__ import annotations

import io

import pytest

from flows.cli import terminal


@pytest.mark.parametrize(
    ("argv", "expected_argv", "expected_verbose"),
    [
        (["fileorg", "-v", "plan", "x"], ["fileorg", "plan", "x"], True),
        (["fileorg", "plan", "x", "--verbose"], ["fileorg", "plan", "x"], True),
        (["fileorg", "plan", "x"], ["fileorg", "plan", "x"], False),
        (["fileorg", "organize", "--", "-v"], ["fileorg", "organize", "--", "-v"], False),
    ],
)
def test_verbose_is_taken_from_anywhere_before_a_double_dash(
    argv: list[str], expected_argv: list[str], expected_verbose: bool
) -> None:
    assert terminal.take_verbose(argv) is expected_verbose
    assert argv == expected_argv


def test_the_status_line_is_erased_by_the_next_write_only() -> None:
    real = io.StringIO()
    stderr = terminal.StatusStderr(real)

    stderr.status("starting a local Prefect server...")
    stderr.write("error: no such root\n")
    stderr.write("second\n")

    assert real.getvalue() == (
        "\r\x1b[Kstarting a local Prefect server...\r\x1b[Kerror: no such root\nsecond\n"
    )


@pytest.mark.parametrize(
    ("argv", "expected_status"),
    [
        (["fileorg", "organize", "/t", "--dry-run"], "connecting to the local Prefect server..."),
        (["fileorg", "serve"], "starting the Prefect server, the runner and the API..."),
        (["fileorg", "plan", "x"], "plan..."),
        (["fileorg", "--version"], None),
        (["fileorg", "plan", "--help"], None),
    ],
)
def test_the_first_status_names_what_is_starting(
    argv: list[str], expected_status: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)

    assert terminal.first_status(argv) == expected_status
