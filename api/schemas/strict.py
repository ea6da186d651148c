"""What every body shares: the strict base of request bodies, and the error body.

Request bodies are read strictly: unknown fields are refused, and booleans and numbers must be
JSON booleans and numbers (`"dry_run": "no"` is 422, not false); strings that are not valid
Unicode (a lone surrogate) are 422 as well.
"""

from __future__ import annotations

from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

MAX_PATH = 4096
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
USERNAME_PATTERN = r"^[A-Za-z0-9_.-]+$"


def _lone_surrogate(value: object) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, list | tuple):
        return any(_lone_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    return False


def _exact_kind(annotation: Any) -> type | None:
    """bool or int when that is what the field holds (optionally None), else None."""
    if get_origin(annotation) in (Union, UnionType):
        kinds = [a for a in get_args(annotation) if a is not type(None)]
        annotation = kinds[0] if len(kinds) == 1 else None
    return annotation if annotation in (bool, int) else None


class Strict(BaseModel):
    """A request body: unknown fields refused, every string valid Unicode, every boolean and
    integer field taking only JSON booleans and integers (Pydantic's lax mode reads "no" as
    false, 1 as true and "300" as 300). A check in the base, not per field, so a field added
    later is strict too; tests/api/test_input.py holds every request schema to it."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _exact(cls, value: object, info: ValidationInfo) -> object:
        # Python's JSON decoder lets `"\ud800"` through; no database can store it (and the
        # error echoing it became a 500: issue 12 #12).
        if _lone_surrogate(value):
            raise ValueError("must be valid Unicode text (a lone surrogate such as \\ud800 is not)")
        kind = _exact_kind(cls.model_fields[info.field_name or ""].annotation)
        if value is None or kind is None:
            return value
        if kind is bool and not isinstance(value, bool):
            raise ValueError("must be a JSON boolean: true or false")
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError("must be a JSON integer")
        return value


class ErrorPublic(BaseModel):
    detail: str
