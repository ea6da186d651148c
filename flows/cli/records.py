"""The small JSON records the CLI's background processes leave in their state folders (the
Prefect server's, flows.cli.background; the warm runner's, flows.cli.warm_state): read
whatever their shape, written 0600 and replaced in one step."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, TypeVar

R = TypeVar("R")


def load_record(path: Path, kind: type[R]) -> R | None:
    """The record save_record wrote at `path`, or None when it is missing, torn or lacks a
    field `kind` has no default for. Fields `kind` does not know are dropped: another
    version's record still names its process, which this version may have to stop."""
    try:
        given = json.loads(path.read_text())
        known = {field.name for field in fields(kind)}  # type: ignore[arg-type]
        return kind(**{key: value for key, value in given.items() if key in known})
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def save_record(path: Path, record: Any) -> None:
    """`record` (a dataclass) at `path`, 0600 (it holds a token), replaced in one step."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(record)))
    tmp.chmod(0o600)  # the token
    os.replace(tmp, path)
