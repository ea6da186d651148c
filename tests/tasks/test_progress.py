"""tasks.progress: every stage a sink hears of is started before it runs or finishes."""

from __future__ import annotations

from tasks.progress import Progress, RecordingSink, sink_installed


def test_a_stage_that_finishes_or_advances_unstarted_is_started_first() -> None:
    sink = RecordingSink()
    progress = Progress("op")
    with sink_installed(sink):
        progress.finish("report")  # the organize flow's report stage said no start once
        progress.advance("hash", 2)
        progress.start("scan")
        progress.advance("scan", 3)
        progress.finish("scan")
        progress.finish("scan")  # the same stage again, its start not said

    assert [(e.stage, e.state, e.files_done) for e in sink.events] == [
        ("report", "started", 0),
        ("report", "finished", 0),
        ("hash", "started", 0),
        ("hash", "running", 2),
        ("scan", "started", 0),
        ("scan", "running", 3),
        ("scan", "finished", 3),
        ("scan", "started", 0),
        ("scan", "finished", 0),
    ]
