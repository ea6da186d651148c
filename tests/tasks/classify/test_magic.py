"""The signature index (tasks.classify.magic) answers what puremagic.magic_string answered:
category_for_magic against the puremagic path it replaced, on real file heads and on heads
built from every signature of puremagic's own tables."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import puremagic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from puremagic.main import magic_footer_array, magic_header_array, multi_part_dict

from tasks.classify import categories, magic
from tasks.classify.categories import MAGIC_SCAN_BYTES, category_for_magic


def puremagic_category(head: bytes) -> str | None:
    """category_for_magic as it was before the index: puremagic.magic_string itself."""
    if not head:
        return None
    if head.startswith(b"\x7fELF"):
        return "other"
    try:
        matches = puremagic.magic_string(head[:MAGIC_SCAN_BYTES])
    except Exception:
        return None
    scored: list[tuple[float, str]] = []
    for match in matches:
        confidence = float(match.confidence)
        if confidence < 0.3:
            continue
        found = categories._category_of_match(str(match.extension or ""), str(match.mime_type))
        if found is not None:
            scored.append((confidence, found))
    if not scored:
        return None
    best = max(confidence for confidence, _ in scored)
    top = {found for confidence, found in scored if confidence == best}
    if len(top) == 1:
        return top.pop()
    if "archives" in top:
        return "archives"
    return next(found for confidence, found in scored if confidence == best)


def real_heads(limit: int) -> Iterator[bytes]:
    """First bytes of files of this machine: the Python install and /usr/share."""
    roots = [Path(sys.base_prefix) / "lib", Path("/usr/share"), Path(sys.prefix)]
    count = 0
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in sorted(names)[:5]:
                try:
                    with open(os.path.join(folder, name), "rb") as fh:
                        head = fh.read(8192)
                except OSError:
                    continue
                yield head
                yield head[3:]  # past the signature at 0: what an offset finds
                count += 1
                if count >= limit:
                    return


def test_real_heads_get_the_category_puremagic_gave() -> None:
    heads = list(real_heads(3000))
    assert len(heads) > 500
    wrong = [h[:16] for h in heads if category_for_magic(h) != puremagic_category(h)]
    assert wrong == []


def signature_heads(seed: int) -> Iterator[bytes]:
    """Each header and footer signature, and each multi-part pair, on random filler."""
    rng = random.Random(seed)
    for row in [*magic_header_array, *magic_footer_array]:
        size = rng.choice([len(row.byte_match) + abs(row.offset), 600, 3000])
        filler = bytearray(rng.randbytes(max(size, len(row.byte_match) + abs(row.offset))))
        start = row.offset if row.offset >= 0 else len(filler) + row.offset
        filler[start : start + len(row.byte_match)] = row.byte_match
        yield bytes(filler)
    for key, options in multi_part_dict.items():
        for option in options:
            head = bytearray(key + rng.randbytes(3000))
            at = option.offset if option.offset >= 0 else len(head) + option.offset
            head[at : at + len(option.byte_match)] = option.byte_match
            yield bytes(head)
            yield bytes(head[: max(at + len(option.byte_match), 1)])


def test_every_signature_gets_the_category_puremagic_gave() -> None:
    wrong = []
    for head in signature_heads(14):
        if category_for_magic(head) != puremagic_category(head):
            wrong.append(head[:16])
    assert wrong == []


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([r.byte_match for r in magic_header_array if r.offset == 0]),
    st.binary(max_size=64),
    st.sampled_from([b"", b"</svg>\n", b"koly" + b"\0" * 508, b"\0\0\x01\xb7"]),
)
def test_a_signature_among_random_bytes_gets_the_category_puremagic_gave(
    start: bytes, rest: bytes, end: bytes
) -> None:
    head = start + rest + end
    assert category_for_magic(head) == puremagic_category(head)


@pytest.mark.parametrize("cut", [1, 2, 4, 8, 600, 2047, 2048, 2049, 8192])
def test_heads_cut_anywhere_agree(cut: int) -> None:
    for head in list(real_heads(200))[::2]:
        assert category_for_magic(head[:cut]) == puremagic_category(head[:cut])


def test_short_signatures_are_left_out_only_when_nothing_builds_on_them() -> None:
    kept = {
        row.byte_match
        for _, table in magic._index(MAGIC_SCAN_BYTES).headers
        for rows in table.values()
        for _, row in rows
    }
    assert all(len(b) >= magic.MIN_LENGTH or b in multi_part_dict for b in kept)
    short_keys = {r.byte_match for r in magic_header_array if len(r.byte_match) < 3}
    assert short_keys & set(multi_part_dict) <= kept
