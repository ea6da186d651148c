"""The `fileorg` command line: thin commands over flows (organize) and queries (everything else).

Errors a user can fix print one line and exit 2; nothing else prints a traceback unless -v
(or FILEORG_DEBUG) is given. Ctrl-C ends any command within a few seconds with one line
saying what state the tree is in and what to run next (flows/cli/interrupt.py).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from contextlib import suppress
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

import typer

from flows.cli import terminal
from storage.errors import FileorgError, StorageError, UserError

if TYPE_CHECKING:
    import click

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
    _verbose: bool = typer.Option(
        False,
        "-v",
        "--verbose",
        help="Show Prefect's logs and full tracebacks (anywhere on the command line).",
    ),
) -> None:
    """Tidy large trees of files: find duplicates, classify, plan, apply safely, undo."""


def _quiet_prefect(verbose: bool) -> None:
    if verbose:
        os.environ["FILEORG_VERBOSE"] = "1"  # children (serve's) read it too
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    # Prefect's logs would tear through the progress bar, and its errors carry tracebacks: the
    # CLI says what went wrong in one line of its own instead (-v shows everything).
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_SERVER_LEVEL", "CRITICAL")
    # The temporary server's telemetry cannot reach the internet from offline machines.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Never a Prefect prompt (its profile menu): there is nobody to answer it in a child.
    os.environ.setdefault("PREFECT_CLI_PROMPT", "false")


def _register() -> None:
    # Every command module, whatever the command (Typer lists them all in --help). Each one
    # imports DuckDB, pyarrow, pydantic and Prefect inside the commands that use them, so that
    # `fileorg --version`, --help and a usage error start in a tenth of a second, not two
    # (tests/flows/test_cli_start.py).
    from flows.cli import admin, profiles, query, run, schedule, serve, server  # noqa: F401


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
    at_root = ctx is None or ctx.parent is None
    # The command the line names, found once: Click raised this before its context existed.
    named = _command_named(sys.argv[1:]) if at_root else None
    if type(exc).__name__ == "NoSuchOption":
        message = _no_such_option(exc, named if ctx is not None else None)
    command = ctx.command_path if ctx is not None else "fileorg"
    if named is not None:  # `fileorg --json plan`, `fileorg organize R --mode`: its help
        command = f"fileorg {named.name}"
    return f"{message} (see {command} --help)"


def _no_such_option(exc: typer.TyperException, named: click.Command | None) -> str:
    """Click's line without its guesses unless one is close: it offered `--i-mean-it` for
    `--limit` and `--version` for `--json` (the tryout). An option typed before the command
    `named` that is one of its own is told where it goes."""
    import difflib

    name = str(getattr(exc, "option_name", ""))
    possible = list(getattr(exc, "possibilities", None) or [])
    close = difflib.get_close_matches(name.lstrip("-"), [p.lstrip("-") for p in possible], 1, 0.7)
    if named is not None and any(name in param.opts for param in named.params):
        where = f"fileorg {named.name} ... {name}"
        return f"no such option before the command: {name} (it goes after it: {where})"
    hint = f"; did you mean --{close[0]}?" if close else ""
    return f"no such option: {name}{hint}"


def _command_named(args: list[str]) -> click.Command | None:
    """The first of fileorg's commands that `args` names, if any."""
    commands: dict[str, click.Command] = getattr(typer.main.get_command(app), "commands", {})
    return next((commands[arg] for arg in args if arg in commands), None)


# Ctrl-C: the first one interrupts the command, which has until this deadline to unwind (a
# thread still hashing a large file would keep the process alive); then it is ended.
INTERRUPT_SECONDS = 3.5
_interrupted = terminal.INTERRUPTED
_exiting = threading.Lock()


# SIGTERM or SIGHUP: the time the interrupted line and record get before the process ends of
# the signal anyway (a supervisor's SIGKILL follows SIGTERM after 10 s or more).
STOP_SECONDS = 2.0


def _exit_interrupted() -> None:
    """Print the one line, end the process now (once). The local Prefect server runs on in
    the background (flows/cli/background.py): Prefect's engine may still be reporting the run."""
    if not _exiting.acquire(blocking=False):
        return
    _say_interrupted()
    _end_pool()
    os._exit(130)


def _say_interrupted() -> None:
    """The one line on stderr, and an organize stopped while planning recorded `interrupted`
    with it (flows/cli/interrupt.py)."""
    from flows.cli import interrupt

    bars = sys.modules.get("flows.cli.bar")  # imported by a run with bars only
    if bars is not None:
        with suppress(Exception):
            bars.stop_shown()
    terminal.clear()
    try:
        line = interrupt.message()
    except Exception:  # the line must be printed whatever state the data folder is in
        line = "interrupted"
    interrupt.record(line)
    with suppress(Exception):  # after a hang-up there may be no terminal to write to
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    with suppress(Exception):
        sys.stdout.flush()


def _end_pool() -> None:
    """The stages' process pool (tasks.pool), if this process made one, ended before the exit:
    its workers, forkserver and resource tracker hold this process's stdout and stderr, so a
    reader of them would wait for them (a bench's subprocess.run never returned)."""
    pool = sys.modules.get("tasks.pool")
    if pool is not None:
        with suppress(Exception):
            pool.end()


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    """SIGTERM or SIGHUP: the Ctrl-C's line and record (an organize stopped while planning is
    `interrupted`, not left `running`), then the pool ended and the process ends of the signal,
    as a killed run. The line is written by a thread given STOP_SECONDS: this handler may have
    interrupted the main thread inside a lock that writing it needs."""
    if _exiting.acquire(blocking=False):  # not already ending after a Ctrl-C
        worker = threading.Thread(target=_say_interrupted, name="fileorg-stop", daemon=True)
        worker.start()
        worker.join(STOP_SECONDS)
    _end_pool()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _after_ctrl_c() -> None:
    """An error raised by the Ctrl-C's unwinding (Prefect's engine raises its own: "Task run is
    not set") is the interruption, not a failure to report."""
    if _interrupted.is_set():
        _exit_interrupted()


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    if _interrupted.is_set():
        _exit_interrupted()  # a second Ctrl-C: no more waiting
    _interrupted.set()
    threading.Timer(INTERRUPT_SECONDS, _exit_interrupted).start()
    raise KeyboardInterrupt


def main() -> None:
    from flows.cli import warm

    code = warm.dispatch(sys.argv)  # a warm runner's child ran it (flows/cli/runner.py)
    if code is not None:
        sys.exit(code)
    run_here()


def run_here() -> None:
    """The command, in this process (or in the warm runner's child, which calls this)."""
    verbose = terminal.take_verbose(sys.argv)
    _quiet_prefect(verbose)
    terminal.install()
    first = terminal.first_status(sys.argv)
    if first:
        terminal.status(first)
    signal.signal(signal.SIGINT, _on_sigint)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_stop_signal)
    try:
        _register()
        # The name the user types, however this process started: Click would say
        # `python -m flows.cli.runner` in a warm runner's child (the tryout's usage hint).
        code = app(standalone_mode=False, prog_name="fileorg")
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `fileorg`: the help, as asked
            _fail(exc.format_message(), 0)
        _fail(f"error: {usage_line(exc)}", exc.exit_code)
    except UserError as exc:
        _fail(f"error: {exc}", 2)
    except (StorageError, FileorgError) as exc:
        _after_ctrl_c()
        _fail(f"error: {exc}", 1)
    except typer.Abort:
        if _interrupted.is_set():  # Ctrl-C at a prompt
            _exit_interrupted()
        _fail("aborted: nothing changed", 1)
    except KeyboardInterrupt:
        _exit_interrupted()
    except BrokenPipeError:
        # The reader went away (`fileorg plan X --jsonl | head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except Exception as exc:
        _after_ctrl_c()
        if terminal.verbose():
            raise
        _fail(f"error: {type(exc).__name__}: {exc} (run again with -v for details)", 1)
    finally:
        terminal.clear()
        _end_pool()
    if _interrupted.is_set():  # Typer turned the Ctrl-C into an exit code 130
        _exit_interrupted()
    sys.exit(code if isinstance(code, int) else 0)


def _fail(line: str, code: int) -> NoReturn:
    terminal.clear()
    print(line, file=sys.stderr)
    sys.exit(code)
