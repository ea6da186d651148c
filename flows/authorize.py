"""Deployment runs must carry the API's ticket for exactly what they do (storage.tickets).

A flow called in the CLI's own process has no deployment and needs none. A flow run of a
deployment (the API's, a schedule's, or one created on the Prefect API by anyone who reaches
it) is refused before it touches a file unless its ticket covers it; the refusal is recorded
in the data folder's `refusals/` and fails the run with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from storage.locations import DataStore
from storage.tickets import TicketError, record_refusal, verify

# Set while a verified run calls another flow (apply finishing an interrupted organize): that
# subflow belongs to the same deployment run, and its parent's ticket covered it.
_covered: ContextVar[bool] = ContextVar("fileorg_ticket_covered", default=False)


def _deployment_run() -> tuple[str, str] | None:
    """(deployment id, flow run id) of the current run when a deployment started it.

    The engine's own copy of the flow run says: for a deployment's run it is the server's flow
    run (the runner read it to execute it), for a call in this process the one the engine just
    created. prefect.runtime.deployment.get_id() looks for the id on the run's context, where it
    never is, and asks the server for the flow run instead: ~1 s of a loaded CLI run."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:  # not in a flow: what the runtime says
        return _runtime_deployment_run()
    deployment_id = context.flow_run.deployment_id
    return (str(deployment_id), str(context.flow_run.id)) if deployment_id else None


def _runtime_deployment_run() -> tuple[str, str] | None:
    from prefect.runtime import deployment, flow_run

    deployment_id = deployment.get_id()
    return (deployment_id, str(flow_run.get_id())) if deployment_id else None


def authorize(
    store: DataStore, ticket: str | None, expected: dict[str, Any]
) -> dict[str, Any] | None:
    """The ticket's claims for a deployment run (None in the CLI's own process)."""
    run = None if _covered.get() else _deployment_run()
    if run is None:
        return None
    try:
        return verify(store, ticket, expected)
    except TicketError as exc:
        what = {"deployment_id": run[0], **{k: v for k, v in expected.items() if k != "options"}}
        record_refusal(store, run[1], what, str(exc))
        raise


@contextmanager
def covered() -> Iterator[None]:
    token = _covered.set(True)
    try:
        yield
    finally:
        _covered.reset(token)
