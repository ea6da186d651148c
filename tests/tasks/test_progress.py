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
        ("scan", "started", 3),  # again, with the counts it had
        ("scan", "finished", 3),
    ]


def test_counts_never_go_backwards_when_a_finished_stage_advances_and_finishes_again() -> None:
    """An advance after the stage finished, with no start between, then a second finish: the
    stage starts again with its counts and ends with them (the second finish reset them to 0,
    which the API's sockets then dropped as going backwards: no second finish reached them)."""
    sink = RecordingSink()
    progress = Progress("op")
    with sink_installed(sink):
        progress.start("apply", files_total=4, bytes_total=40)
        progress.advance("apply", 3, 30)
        progress.finish("apply")
        progress.advance("apply", 2, 20)  # late: no start since the finish
        progress.finish("apply")

    seen = [
        (e.state, e.files_done, e.files_total, e.bytes_done, e.bytes_total) for e in sink.events
    ]
    assert seen == [
        ("started", 0, 4, 0, 40),
        ("running", 3, 4, 30, 40),
        ("finished", 3, 4, 30, 40),
        ("started", 3, 4, 30, 40),
        ("running", 5, 4, 50, 40),
        ("finished", 5, 5, 50, 50),
    ]
    done = [(e.files_done, e.bytes_done) for e in sink.events]
    assert done == sorted(done)
