"""The progress bars and a Ctrl-C's line (the real-terminal run is in test_interrupt.py)."""

from __future__ import annotations

import io
import re
import sys
import threading

import pytest
from rich.console import Console

import flows.cli as cli
from flows.cli import bar, interrupt
from tasks.progress import ProgressEvent


def test_the_ctrl_c_line_from_another_thread_stays_below_the_bars(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The timer thread prints the line while the main thread still unwinds: a bar still live
    # would draw itself again below it (a CI run's last line was "scan ━━━ 0/? 0:00:03").
    screen = io.StringIO()
    monkeypatch.setattr(sys, "stderr", screen)
    monkeypatch.setattr(
        bar, "console", lambda stderr: Console(file=screen, force_terminal=True, width=60)
    )
    monkeypatch.setattr(interrupt, "message", lambda: "interrupted: nothing was changed")
    monkeypatch.setattr(interrupt, "record", lambda line: None)

    with bar.ProgressBars(enabled=True) as bars:
        bars.publish(ProgressEvent(operation_id="op", stage="scan", state="running", files_done=7))
        bars._progress.refresh()  # as its 10-a-second thread would
        drawn_before = screen.getvalue()
        timer = threading.Thread(target=cli._say_interrupted)
        timer.start()
        timer.join()
        after = screen.getvalue()

    assert "scan" in drawn_before  # the bar was on the terminal when the line came
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", after).replace("\r", "\n")
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[-1] == "interrupted: nothing was changed"
    assert screen.getvalue() == after  # the main thread's own unwinding drew nothing more
