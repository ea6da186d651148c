"""storage.operations: naming operations (prefixes, `last`), stale plans, repeated requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage import operations
from storage.errors import OperationNotFound, OperationStateError, UserError
from storage.locations import DataStore
from storage.operations import OperationRecord

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> DataStore:
    return DataStore(str(tmp_path / "data"))


def saved(
    store: DataStore, op_id: str, root: str = "/t/root", status: str = "planned", minutes: int = 0
) -> OperationRecord:
    """A record created `minutes` after T0, last written at that time too."""
    record = OperationRecord(
        id=op_id, root=root, status=status, created_at=T0 + timedelta(minutes=minutes)
    )
    operations.save(store, record)
    # save() stamps updated_at with the clock: set it to the story's time instead.
    record.updated_at = record.created_at
    path = operations.record_path(store, op_id)
    store.write_bytes(path, record.model_dump_json().encode())
    return record


A = "aaaa1111-0000-4000-8000-000000000001"
B = "aaaa2222-0000-4000-8000-000000000002"
C = "cccc3333-0000-4000-8000-000000000003"


@pytest.mark.parametrize(
    ("given", "expected_id"),
    [
        (A, A),
        (A.upper(), A),
        ("aaaa1", A),
        ("aaaa1111-0", A),
        ("aaaa11110000", A),  # without its dashes
        ("cccc", C),
        ("last", C),
        (" LAST ", C),
    ],
)
def test_an_operation_is_named_by_id_prefix_or_last(
    store: DataStore, given: str, expected_id: str
) -> None:
    for minutes, op_id in enumerate((A, B, C)):
        saved(store, op_id, minutes=minutes)

    assert operations.resolve_id(store, given) == expected_id


@pytest.mark.parametrize(
    ("given", "expected_error", "expected_message"),
    [
        ("aaaa", UserError, "id prefix 'aaaa' matches 2 operations"),
        # Too short to be taken: said so when it starts an id, else not found.
        (
            "ccc",
            UserError,
            r"id prefix 'ccc' is too short: give at least 4 characters \(it matches"
            r" cccc3333-0000\)",
        ),
        ("a", UserError, r"too short: give at least 4 characters \(it matches aaaa1111-0000, aaaa"),
        ("abc", OperationNotFound, "no operation with id abc"),
        ("", OperationNotFound, "no operation with id $"),
        ("dddd", OperationNotFound, "no operation with id dddd"),
        ("../../etc", OperationNotFound, "no operation with id ../../etc"),
        ("*", OperationNotFound, r"no operation with id \*"),
    ],
)
def test_bad_names_are_one_line(
    store: DataStore, given: str, expected_error: type[Exception], expected_message: str
) -> None:
    for op_id in (A, B, C):
        saved(store, op_id)

    with pytest.raises(expected_error, match=expected_message):
        operations.resolve_id(store, given)


def test_last_without_operations(store: DataStore) -> None:
    with pytest.raises(OperationNotFound, match="no operations yet"):
        operations.resolve_id(store, "last")


def test_last_is_the_clis_own_newest_never_an_api_users(store: DataStore) -> None:
    """An API user's operation in the same data folder is theirs: `fileorg apply last --yes`
    in a script must not apply it (the tryout's `plan last` showed another user's plan)."""
    saved(store, A, minutes=0)
    api_users = saved(store, C, minutes=5)
    api_users.owner = "7d0c5e1a-0000-4000-8000-00000000000a"
    store.write_bytes(operations.record_path(store, C), api_users.model_dump_json().encode())

    assert operations.list_all(store)[0].id == C  # the newest of all is the user's
    assert operations.resolve_id(store, "last") == A
    assert operations.resolve_id(store, C) == C  # named by its id, it is found


def test_last_when_only_api_users_have_operations(store: DataStore) -> None:
    record = saved(store, C)
    record.owner = "7d0c5e1a-0000-4000-8000-00000000000a"
    store.write_bytes(operations.record_path(store, C), record.model_dump_json().encode())

    with pytest.raises(OperationNotFound, match="no operation was started from the CLI here"):
        operations.resolve_id(store, "last")


@pytest.mark.parametrize(
    ("other_root", "other_status", "other_minutes", "expected_stale"),
    [
        ("/t/root", "applied", 5, True),  # applied after our scan began
        ("/t/root", "rolled_back", 5, True),  # a rollback moves files too
        ("/t/root/sub", "partial", 5, True),  # an overlapping root
        ("/t", "applying", 5, True),  # interrupted while applying
        ("/t/root", "failed", 5, False),  # a plan that failed changed nothing
        ("/t/root", "planned", 5, False),  # a newer plan changes nothing
        ("/t/root", "applied", -5, False),  # applied before our scan: the plan saw it
        ("/t/other", "applied", 5, False),  # another folder
        ("/t/root2", "applied", 5, False),  # a name that merely starts the same
    ],
)
def test_a_plan_is_stale_after_another_operation_changed_its_root(
    store: DataStore,
    other_root: str,
    other_status: str,
    other_minutes: int,
    expected_stale: bool,
) -> None:
    record = saved(store, A, "/t/root")
    saved(store, B, other_root, other_status, other_minutes)

    newer = operations.newer_change(store, record)

    assert (newer.id if newer else None) == (B if expected_stale else None)


def test_an_interrupted_apply_that_failed_counts_as_a_change(store: DataStore) -> None:
    record = saved(store, A, "/t/root")
    other = saved(store, B, "/t/root", "failed", 5)
    other.stage = "apply"
    store.write_bytes(operations.record_path(store, B), other.model_dump_json().encode())

    assert operations.newer_change(store, record) is not None


@pytest.mark.parametrize(
    ("status", "request_", "expected_words"),
    [
        ("applied", "apply", "is already applied: nothing to do"),
        ("partial", "apply", "is already applied: nothing to do"),
        ("rolled_back", "rollback", "is already rolled back: nothing to undo"),
        ("planned", "apply", None),
        ("rolled_back", "apply", None),  # refused by the apply rules: "plan it again"
        ("rollback_incomplete", "rollback", None),  # running it again finishes it
        ("applied", "rollback", None),
    ],
)
def test_repeating_a_finished_request(
    status: str, request_: str, expected_words: str | None
) -> None:
    record = OperationRecord(id=A, root="/t", status=status)

    refusal = operations.repeat_refusal(record, request_)  # type: ignore[arg-type]

    assert (refusal is None) == (expected_words is None)
    if expected_words:
        assert refusal == f"operation {A} {expected_words}" + (
            f" (undo it with fileorg rollback {A})" if request_ == "apply" else ""
        )


# The status rules: what each run may start from, one table for the flows, the CLI and the API.
EXPECTED_APPLY = {
    "pending": "not a finished dry run",
    "running": "not a finished dry run",
    "planned": None,
    "failed": "not a finished dry run",
    "applying": None,
    "applied": "already applied",
    "partial": "already applied",
    "rolling_back": "was rolled back",
    "rolled_back": "was rolled back",
    "rollback_incomplete": "was rolled back",
    "interrupted": None,
}


@pytest.mark.parametrize(("status", "expected_refusal"), sorted(EXPECTED_APPLY.items()))
def test_what_an_apply_may_start_from(status: str, expected_refusal: str | None) -> None:
    record = OperationRecord.model_validate({"id": "op", "root": "/t", "status": status})
    if expected_refusal is None:
        operations.check_can_apply(record)
        assert status in operations.APPLICABLE
        return
    with pytest.raises(OperationStateError, match=expected_refusal):
        operations.check_can_apply(record)
    assert status not in operations.APPLICABLE


@pytest.mark.parametrize("status", ["pending", "running", "failed"])
def test_an_organize_that_was_to_apply_is_finished_by_an_apply(status: str) -> None:
    record = OperationRecord.model_validate(
        {"id": "op", "root": "/t", "status": status, "dry_run": False}
    )
    operations.check_can_apply(record)  # it plans what is left, then applies


def test_an_apply_waits_for_an_interrupted_rollback() -> None:
    record = OperationRecord(id="op", root="/t", status="interrupted", stage="rollback")
    with pytest.raises(OperationStateError, match="finish the rollback first"):
        operations.check_can_apply(record)


def test_an_organize_resumes_only_what_did_not_finish() -> None:
    resumable = set(operations.RESUMABLE)
    assert resumable == {"pending", "running", "failed", "planned", "applying", "interrupted"}
    for status in set(EXPECTED_APPLY) - resumable:
        record = OperationRecord.model_validate({"id": "op", "root": "/t", "status": status})
        with pytest.raises(OperationStateError, match=f"already {status}"):
            operations.check_can_organize(record)
    assert operations.APPLYING <= operations.APPLICABLE <= resumable


def test_a_rollback_needs_something_applied(store: DataStore) -> None:
    rolled_back = saved(store, A, status="rolled_back")
    assert operations.check_can_roll_back(store, rolled_back) is False  # twice does nothing
    assert operations.check_can_roll_back(store, saved(store, B, status="partial"))
    with pytest.raises(OperationStateError, match="never applied"):
        operations.check_can_roll_back(store, saved(store, C, status="planned"))


@pytest.mark.parametrize("dry_run", [True, False])
def test_an_organize_interrupted_while_planning_resumes_as_an_organize(
    store: DataStore, dry_run: bool
) -> None:
    """Ctrl-C in a stage of the plan: `interrupted`, with the line saying how to resume, but
    none of an interrupted apply's rules: nothing changed, nothing to apply or roll back."""
    record = saved(store, A, status="running")
    record.stage, record.dry_run = "prefix", dry_run
    line = f"interrupted: nothing in /t/root was changed; resume it: fileorg organize --id {A}"

    assert operations.interrupt_planning(record, line)
    operations.save(store, record)

    assert (record.status, record.stage, record.error) == ("interrupted", "prefix", line)
    assert operations.planning_interrupted(record)
    assert not operations.applying(record) and not operations.applicable(record)
    assert not operations.changed_files(record)
    assert operations.newer_change(store, saved(store, B, minutes=-5)) is None
    operations.check_can_organize(record)
    with pytest.raises(OperationStateError, match="never applied"):
        operations.check_can_roll_back(store, record)
    if dry_run:
        with pytest.raises(OperationStateError, match=r"not a finished dry run \(status: inte"):
            operations.check_can_apply(record)
    else:
        operations.check_can_apply(record)  # organize --apply: it plans what is left, then applies


@pytest.mark.parametrize(
    ("status", "stage", "expected_interrupted"),
    [
        ("running", None, True),  # before its first stage: recorded as the scan's
        ("running", "classify", True),
        ("failed", "hash", True),  # an error the Ctrl-C's unwinding raised
        ("applying", "apply", False),  # further along: an interrupted apply's rules
        ("planned", None, False),
        ("interrupted", "apply", False),
    ],
)
def test_only_a_plan_under_way_is_interrupted_while_planning(
    status: str, stage: str | None, expected_interrupted: bool
) -> None:
    record = OperationRecord.model_validate(
        {"id": A, "root": "/t", "status": status, "stage": stage}
    )

    assert operations.interrupt_planning(record, "interrupted: ...") is expected_interrupted
    assert operations.planning_interrupted(record) is expected_interrupted
    if not expected_interrupted:
        assert (record.status, record.stage) == (status, stage)
