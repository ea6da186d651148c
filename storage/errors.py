"""Errors that reach users, translated once at the boundary (CLI, API).

FileorgError                 anything this project raises on purpose
├── UserError                bad input: the caller can fix it (exit code 2, HTTP 4xx)
│   ├── RootError            the root is missing, not a directory, or unreadable
│   ├── OperationNotFound    no operation with that id
│   ├── InvalidPlanOptions   unknown mode, template field, policy...
│   ├── BadCursor            a page cursor that is malformed, edited, or made for another listing
│   └── OperationStateError  the operation is not in a state that allows this
└── StorageError             the data folder or a manifest could not be read or written
"""

from __future__ import annotations


class FileorgError(Exception):
    """Base of every error raised on purpose; its message is one line for the user."""


class UserError(FileorgError):
    pass


class RootError(UserError):
    pass


class OperationNotFound(UserError):
    def __init__(self, operation_id: str) -> None:
        super().__init__(f"no operation with id {operation_id}")
        self.operation_id = operation_id


class InvalidPlanOptions(UserError):
    pass


class OperationStateError(UserError):
    pass


class BadCursor(UserError):
    pass


class StorageError(FileorgError):
    pass
