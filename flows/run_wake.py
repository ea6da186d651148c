"""The runner polls at once when one of its deployments gets a new run, not at its next poll.

Prefect's runner finds the runs it must start by polling the server (every
FILEORG_RUNNER_POLL_SECONDS, plus up to 30 % jitter), so a run the API has just created waits
half an interval on average before anything happens to it. Here the runner also follows the
server's event stream for `prefect.flow-run.Scheduled` events of its own deployments (the
server emits one as it creates a run) and polls when one comes. It is the same poll and the
same submission, only sooner: Pending, Submitting, the forked process, cancellation and crash
detection are all Prefect's own. Wakes that come while a woken poll runs make one more poll
after it. The periodic poll stays, for what the stream misses (a reconnect, a run scheduled
for later): a lost wake costs what every run cost before, at most one interval. Two polls
that find the same run cannot start it twice: the runner skips a run it is submitting, and
the server takes only one Scheduled -> Pending.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from contextlib import suppress
from uuid import UUID

from prefect.runner import Runner

SCHEDULED = "prefect.flow-run.Scheduled"
RETRY_SECONDS = 2.0
log = logging.getLogger("fileorg.runner")


async def serve_woken(runner: Runner, deployment_ids: Iterable[UUID]) -> None:
    """`runner.start()`, woken by its deployments' new runs until it returns."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():  # no server to follow (Prefect would start one)
        await runner.start()
        return
    wake = asyncio.Event()
    helpers = [
        asyncio.create_task(follow_new_runs(list(deployment_ids), wake), name="run-wakes"),
        asyncio.create_task(poll_when_woken(runner, wake), name="woken-polls"),
    ]
    try:
        await runner.start()
    finally:
        for task in helpers:
            task.cancel()
        for task in helpers:
            with suppress(asyncio.CancelledError):
                await task


async def follow_new_runs(deployment_ids: list[UUID], wake: asyncio.Event) -> None:
    """Set `wake` on every new run of these deployments, and on each (re)connection (a run
    may have been created while the stream was down); retried for as long as it runs."""
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter

    wanted = EventFilter(
        event=EventNameFilter(name=[SCHEDULED]),
        related=EventRelatedFilter(id=[f"prefect.deployment.{d}" for d in deployment_ids]),
    )
    while True:
        try:
            async with get_events_subscriber(filter=wanted, reconnection_attempts=3) as events:
                wake.set()
                async for _ in events:
                    wake.set()
        except Exception as exc:  # the periodic poll still finds every run
            log.debug("new-run events lost: %s: %s", type(exc).__name__, exc)
        await asyncio.sleep(RETRY_SECONDS)


async def poll_when_woken(runner: Runner, wake: asyncio.Event) -> None:
    """One poll per wake (wakes during a poll make one more), once the runner has started
    (its first poll, at the start, finds what came before)."""
    while True:
        await wake.wait()
        wake.clear()
        if not runner.started or runner.stopping:
            continue
        try:
            # The runner's own poll and submission (what its poll loop calls).
            await runner._get_and_submit_flow_runs()  # type: ignore[no-untyped-call]
        except Exception as exc:  # the periodic poll tries again
            log.warning("woken poll failed: %s: %s", type(exc).__name__, exc)
