"""Paths as flow parameters: Prefect sends parameters as UTF-8 JSON, which cannot carry the
surrogate escapes that stand for bytes of a name that is not UTF-8.

Such a path travels as `fsb64:` + base64 of its bytes; every other path travels as itself.
Roots are absolute, so a real root can never start with the prefix.
"""

from __future__ import annotations

import base64
import os

PREFIX = "fsb64:"


def to_param(path: str) -> str:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return PREFIX + base64.b64encode(os.fsencode(path)).decode("ascii")
    return path


def from_param(text: str) -> str:
    if text.startswith(PREFIX):
        return os.fsdecode(base64.b64decode(text[len(PREFIX) :], validate=True))
    return text
