"""The `fileorg` command line: thin commands over flows (organize) and queries (everything else).

Errors a user can fix print one line and exit 2; nothing else prints a traceback unless
FILEORG_DEBUG is set.
"""

from __future__ import annotations

import os
import sys

import typer

from storage.errors import FileorgError, StorageError, UserError

app = typer.Typer(
    name="fileorg",
    help="Tidy large trees of files: find duplicates, classify, plan, apply safely, undo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"fileorg {version('fileorg')}")
        raise typer.Exit()


@app.callback()
def _options(
    _version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print the version."
    ),
) -> None:
    """Tidy large trees of files: find duplicates, classify, plan, apply safely, undo."""


def _quiet_prefect() -> None:
    # Prefect's INFO logs would tear through the progress bar; its warnings still show.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_SERVER_LEVEL", "WARNING")
    # The temporary server's telemetry cannot reach the internet from offline machines.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _register() -> None:
    # Imported here so that `fileorg --help` and the query commands never import Prefect.
    from flows.cli import admin, profiles, query, run, schedule, serve  # noqa: F401


def main() -> None:
    _quiet_prefect()
    _register()
    try:
        app()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except (StorageError, FileorgError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: run the same command with --id to resume", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("FILEORG_DEBUG"):
            raise
        print(
            f"error: {type(exc).__name__}: {exc} (set FILEORG_DEBUG=1 for details)", file=sys.stderr
        )
        sys.exit(1)
