"""Keyset pagination: a listing's order as columns, the rows after a given row, and the cursor
that names that row.

A cursor names the last row of a page by its sort key and a unique tiebreak (the path, the
plan row's journal key, a group's digest): the next page is every row after that one in the
order, so rows that appear meanwhile (the shards of a scan still running, outcomes an apply
journals) never make a page repeat or skip a row, as an offset would. A cursor made on a
listing manifest (storage.queries.listing_manifest) also carries that build's id and the row's
position in it: a shortcut taken only on the same build, which never changes once written.

A cursor is URL-safe base64 of its JSON and a checksum over that JSON and the listing, order
and filters it was made for: an edited cursor, or one sent with other filters, is refused
(BadCursor, a 400) rather than read. The checksum is not a secret: a forged cursor can only
point inside a listing its holder may already read, and its values reach DuckDB as
parameters, never as SQL.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import blake3

from storage.errors import BadCursor

CHECKSUM_BYTES = 8
VERSION = 1
KINDS: dict[str, type] = {"bytes": bytes, "int": int, "str": str, "time": datetime}


@dataclass(frozen=True)
class Order:
    """ORDER BY `key` (nulls last either way), then `tiebreak` ascending (descending with
    `tiebreak_descending`): a unique, non-null column (None when the key itself is unique and
    never null)."""

    key: str
    key_kind: str
    descending: bool = False
    tiebreak: str | None = None
    tiebreak_kind: str = "bytes"
    tiebreak_descending: bool = False

    def sql(self) -> str:
        direction = "DESC" if self.descending else "ASC"
        then = f", {self.tiebreak} {self._tie_direction}" if self.tiebreak else ""
        return f"{self.key} {direction} NULLS LAST{then}"

    @property
    def _tie_direction(self) -> str:
        return "DESC" if self.tiebreak_descending else "ASC"

    def values(self, row: dict[str, Any]) -> list[Any]:
        return [row[self.key], row[self.tiebreak]] if self.tiebreak else [row[self.key]]

    def kinds(self) -> list[str]:
        return [self.key_kind, self.tiebreak_kind] if self.tiebreak else [self.key_kind]

    def after(self, values: list[Any]) -> tuple[str, dict[str, Any]]:
        """SQL true for the rows after the row with these values (never NULL), its parameters."""
        beyond = "<" if self.descending else ">"
        if self.tiebreak is None:
            return f"{self.key} {beyond} $after_key", {"after_key": values[0]}
        key, tie = values
        tie_beyond = "<" if self.tiebreak_descending else ">"
        if key is None:  # in the nulls, which come last in both directions
            sql = f"({self.key} IS NULL AND {self.tiebreak} {tie_beyond} $after_tie)"
            return sql, {"after_tie": tie}
        sql = (
            f"({self.key} IS NULL OR {self.key} {beyond} $after_key"
            f" OR ({self.key} = $after_key AND {self.tiebreak} {tie_beyond} $after_tie))"
        )
        return sql, {"after_key": key, "after_tie": tie}


@dataclass(frozen=True)
class Cursor:
    """The last row of a page: its order values; the manifest build and position, if any."""

    values: list[Any]
    build: str | None = None
    position: int | None = None


def binding(listing: str, order: Order, filters: dict[str, Any]) -> bytes:
    """What a cursor is made for: the listing (with its operation), the order, the filters."""
    made_for = {"listing": listing, "order": order.sql(), "filters": filters}
    return json.dumps(made_for, sort_keys=True, default=str).encode()


def encode(cursor: Cursor, bound: bytes) -> str:
    body = {
        "v": VERSION,
        "k": [_encode_value(v) for v in cursor.values],
        "m": cursor.build,
        "p": cursor.position,
    }
    raw = json.dumps(body, separators=(",", ":")).encode()
    token = raw + blake3.blake3(raw + b"\0" + bound).digest()[:CHECKSUM_BYTES]
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def decode(token: str, bound: bytes, order: Order) -> Cursor:
    """The cursor in `token`, checked against what it must have been made for."""
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise BadCursor("the cursor is not one this service made: start again without it") from None
    raw, checksum = data[:-CHECKSUM_BYTES], data[-CHECKSUM_BYTES:]
    if (
        len(data) <= CHECKSUM_BYTES
        or blake3.blake3(raw + b"\0" + bound).digest()[:CHECKSUM_BYTES] != checksum
    ):
        raise BadCursor(
            "the cursor does not belong to this listing: it was edited, or made for another"
            " operation, order or filters; start again without it"
        )
    try:
        body = json.loads(raw)
        values = [_decode_value(v, kind) for v, kind in zip(body["k"], order.kinds(), strict=True)]
        build, position = body["m"], body["p"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BadCursor(f"the cursor is malformed ({exc}): start again without it") from None
    if body.get("v") != VERSION or not _optional(build, str) or not _optional(position, int):
        raise BadCursor("the cursor is malformed: start again without it")
    return Cursor(values, build, position)


def _optional(value: Any, kind: type) -> bool:
    return value is None or (isinstance(value, kind) and not isinstance(value, bool))


def _encode_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"x": value.hex()}
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    return value


def _decode_value(value: Any, kind: str) -> Any:
    """A value as its column holds it; a value of the wrong kind is refused (ValueError)."""
    if value is None:
        return None
    if isinstance(value, dict) and kind == "bytes" and set(value) == {"x"}:
        return bytes.fromhex(value["x"])
    if isinstance(value, dict) and kind == "time" and set(value) == {"t"}:
        return datetime.fromisoformat(value["t"])
    expected = KINDS[kind]
    if expected in (int, str) and isinstance(value, expected) and not isinstance(value, bool):
        return value
    raise ValueError(f"a {kind} value was expected")
