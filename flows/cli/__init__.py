"""The `fileorg` command line: thin commands over flows (organize) and queries (everything else).

Errors a user can fix print one line and exit 2; nothing else prints a traceback unless
FILEORG_DEBUG is set.
"""

from __future__ import annotations

import os
import re
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


BOUNDS = (
    (re.compile(r"Input should be greater than or equal to (\S+)"), r"must be \1 or more"),
    (re.compile(r"Input should be greater than (\S+)"), r"must be more than \1"),
    (re.compile(r"Input should be less than or equal to (\S+)"), r"must be \1 or less"),
    (re.compile(r"Input should be a valid integer.*"), "expected a whole number"),
)


def usage_line(exc: typer.TyperException) -> str:
    """Typer's usage errors (an unknown option, a missing argument, a value of the wrong type)
    as one line: `--limit: expected a whole number`, not a boxed usage screen."""
    message = exc.format_message().replace("Value error, ", "").rstrip(".")
    param = getattr(exc, "param", None)
    if type(exc).__name__ != "MissingParameter" and param is not None:
        name = (param.opts or [param.name])[0]
        detail = message.split("': ", 1)[-1] if message.startswith("Invalid value") else message
        for pattern, replacement in BOUNDS:
            detail = pattern.sub(replacement, detail)
        message = f"{name}: {detail}"
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "fileorg"
    return f"{message} (see {command} --help)"


def main() -> None:
    _quiet_prefect()
    _register()
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `fileorg`: the help, as asked
            print(exc.format_message(), file=sys.stderr)
            sys.exit(0)
        print(f"error: {usage_line(exc)}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except (StorageError, FileorgError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except typer.Abort:
        print("aborted: nothing changed", file=sys.stderr)
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
    sys.exit(code if isinstance(code, int) else 0)
