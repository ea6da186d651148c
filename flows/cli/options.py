"""What users type, checked once: one line naming the valid values, never an empty table.

Every check raises UserError (exit 2, one line). Operation ids accept a full id, a short
unique prefix or `last` (storage.operations.resolve_id).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from storage.errors import UserError

if TYPE_CHECKING:  # pydantic and fsspec, imported by the commands that read operations
    from storage.locations import DataStore
    from storage.operations import OperationRecord


def choice(value: str | None, valid: Iterable[str], what: str) -> str | None:
    """`value` lower-cased when it is one of `valid` (None stays None)."""
    if value is None:
        return None
    allowed = list(valid)
    if value.lower() not in allowed:
        raise UserError(f"unknown {what} {value!r}: use {_either(allowed)}")
    return value.lower()


def _either(values: list[str]) -> str:
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"


def at_least(value: int | None, minimum: int, option: str) -> None:
    if value is not None and value < minimum:
        raise UserError(f"{option} must be {minimum} or more (got {value})")


def page(limit: int | None, offset: int) -> None:
    at_least(limit, 1, "--limit")
    at_least(offset, 0, "--offset")


def data_store() -> DataStore:
    from storage.locations import DataStore
    from storage.settings import get_settings

    return DataStore(get_settings().data_url)


def operation(given: str, store: DataStore | None = None) -> OperationRecord:
    """The record of the operation `given` names: a full id, a unique prefix, or `last`."""
    from storage import locks, operations

    store = store or data_store()
    record = operations.load(store, operations.resolve_id(store, given))
    return locks.reconcile(store, record)  # an apply whose process ended is interrupted


def display_id(store: DataStore, operation_id: str) -> str:
    """The short id when it names this operation alone (commands to copy stay short)."""
    from storage import operations

    short = operations.short_id(operation_id)
    try:
        return short if operations.resolve_id(store, short) == operation_id else operation_id
    except UserError:
        return operation_id


def short_ids(operation_ids: list[str]) -> dict[str, str]:
    """Each id's short form where no other id shares it, else the whole id."""
    from storage import operations

    counts = Counter(operations.short_id(i) for i in operation_ids)
    return {
        i: operations.short_id(i) if counts[operations.short_id(i)] == 1 else i
        for i in operation_ids
    }
