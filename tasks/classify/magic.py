"""puremagic's matches for a file's first bytes, through an index of its signature table.

`puremagic.magic_string` compares every one of its ~1,400 header signatures with the bytes
(about 1 ms a file). The index, built once per process, groups the signatures by offset and
first byte, so only the few whose first byte is there are compared; the footers and the
multi-part signatures are tested as puremagic tests them, and the matches come back with
puremagic's confidences in puremagic's order (tests/tasks/classify/test_magic.py holds the
two to the same answers).

Signatures shorter than MIN_LENGTH bytes are left out unless a multi-part signature builds
on them: their confidence (under 0.3) is below what tasks.classify.categories accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from puremagic.main import (
    PureMagic,
    magic_footer_array,
    magic_header_array,
    max_foot,
    multi_part_dict,
)

MIN_LENGTH = 3
# (confidence, extension, mime type)
Match = tuple[float, str, str]


@dataclass(frozen=True)
class _Index:
    # (offset, first byte -> [(position in puremagic's table, signature)]), by offset
    headers: tuple[tuple[int, dict[int, list[tuple[int, PureMagic]]]], ...]
    limit: int  # bytes puremagic is given (the caller's scan size)


@cache
def _index(limit: int) -> _Index:
    by_offset: dict[int, dict[int, list[tuple[int, PureMagic]]]] = {}
    for position, row in enumerate(magic_header_array):
        end = row.offset + len(row.byte_match)
        if row.offset < 0 or not row.byte_match or end > limit:
            continue  # never inside the first `limit` bytes
        if len(row.byte_match) < MIN_LENGTH and row.byte_match not in multi_part_dict:
            continue
        first = by_offset.setdefault(row.offset, {})
        first.setdefault(row.byte_match[0], []).append((position, row))
    return _Index(tuple(sorted(by_offset.items())), limit)


def _confidence(byte_match: bytes) -> float:
    # puremagic.main._confidence, without a file name to compare extensions with.
    n = len(byte_match)
    return 0.8 if n >= 9 else float(f"0.{n}")


def _header_matches(header: bytes, index: _Index) -> list[PureMagic]:
    found: list[tuple[int, PureMagic]] = []
    n = len(header)
    for offset, table in index.headers:
        if offset >= n:
            break
        for position, row in table.get(header[offset], ()):
            end = offset + len(row.byte_match)
            if end <= n and header[offset:end] == row.byte_match:
                found.append((position, row))
    found.sort(key=lambda item: item[0])
    return [row for _, row in found]


def _multi_part(matches: list[PureMagic], header: bytes, footer: bytes) -> set[PureMagic]:
    """The multi-part signatures built on `matches`, exactly as puremagic._identify_all."""
    new: set[PureMagic] = set()
    for matched in matches:
        for row in multi_part_dict.get(matched.byte_match, ()):
            start, end = row.offset, row.offset + len(row.byte_match)
            if row.offset < 0:
                area = footer[start:end] if end != 0 else footer[start:]
                if area == row.byte_match:
                    joined = matched.byte_match + row.byte_match
                    new.add(PureMagic(joined, row.offset, row.extension, row.mime_type, row.name))
            elif end <= len(header) and header[start:end] == row.byte_match:
                joined = header[matched.offset : end]
                new.add(PureMagic(joined, row.offset, row.extension, row.mime_type, row.name))
    return new


def matches(head: bytes, limit: int) -> list[Match]:
    """(confidence, extension, mime type) of every signature puremagic.magic_string finds in
    head[:limit], highest confidence first (puremagic's order among equals), minus those
    shorter than MIN_LENGTH that no multi-part signature builds on."""
    index = _index(limit)
    header = head[:limit]
    footer = header[-max_foot:]
    found = _header_matches(header, index)
    for row in magic_footer_array:
        start, end = row.offset, row.offset + len(row.byte_match)
        if (footer[start:end] if end != 0 else footer[start:]) == row.byte_match:
            found.append(row)
    found.extend(list(_multi_part(found, header, footer)))
    scored = [(_confidence(r.byte_match), len(r.byte_match), r) for r in found]
    scored.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return [(c, str(r.extension or ""), str(r.mime_type or "")) for c, _, r in scored]
