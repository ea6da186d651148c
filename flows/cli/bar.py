"""A terminal progress bar per stage, fed by progress events (a sink, see tasks.progress)."""

from __future__ import annotations

from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from flows.cli.render import console
from tasks.progress import ProgressEvent

# The bars on the terminal now. A Ctrl-C's line may be written by a timer thread while the main
# thread still unwinds (flows/cli/__init__.py): a bar still live would redraw itself below it.
_shown: list[Progress] = []


def stop_shown() -> None:
    """The bars drawn a last time and stopped, so that what is written next stays last."""
    for progress in list(_shown):
        progress.stop()


class ProgressBars:
    def __init__(self, enabled: bool) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console(stderr=True),  # the Console itself: rich uses it as a context
            disable=not enabled,
            transient=False,
        )
        self._bars: dict[str, TaskID] = {}

    def __enter__(self) -> ProgressBars:
        self._progress.__enter__()
        _shown.append(self._progress)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._progress.__exit__(exc_type, exc, tb)
        finally:
            if self._progress in _shown:
                _shown.remove(self._progress)

    def publish(self, event: ProgressEvent) -> None:
        bar = self._bars.get(event.stage)
        if bar is None:
            bar = self._bars[event.stage] = self._progress.add_task(event.stage, total=None)
        total = event.files_total or None
        if event.state == "finished":
            # A finished stage shows full, even one that had nothing to do.
            total = max(event.files_total, event.files_done, 1)
            self._progress.update(bar, total=total, completed=total)
            return
        self._progress.update(bar, completed=event.files_done, total=total)
