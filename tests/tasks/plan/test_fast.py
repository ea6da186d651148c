"""The fast path's string functions mean what the regexps they replaced meant, on every text
DuckDB shows a path as (tasks.plan.fast: a BLOB cast to VARCHAR)."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.plan import fast


def _plain_bytes(path: bytes) -> bool:
    return all(0x20 <= b <= 0x7E and b not in b"\\\"'" for b in path)


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def test_a_blob_as_text_is_its_plain_bytes_and_escapes(con: duckdb.DuckDBPyConnection) -> None:
    """Every byte but printable ASCII, and the backslash and quotes, is written \\xHH: the
    text has no newline, and a backslash exactly when the path is not plain."""
    for b in range(256):
        path = b"a/" + bytes([b]) + b"/c"
        text, is_plain = con.execute(
            f"SELECT $p::VARCHAR, {fast.plain('$p::VARCHAR')}", {"p": path}
        ).fetchall()[0]
        assert all(" " <= ch <= "~" for ch in text), (b, text)
        assert is_plain == _plain_bytes(path), b
        if is_plain:
            assert text.encode() == path


# Printable ASCII with many slashes and dots, and escapes (a backslash stands in a text only so).
TEXTS = st.text(st.sampled_from("ab./ \\x5C"), max_size=12)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS)
def test_parent_and_name_are_the_regexps(con: duckdb.DuckDBPyConnection, text: str) -> None:
    got = con.execute(
        f"SELECT {fast.parent('$t')}, {fast.base_name('$t')},"
        " regexp_extract($t, '^(.*)/', 1), regexp_extract($t, '[^/]*$')",
        {"t": text},
    ).fetchall()[0]
    assert got[:2] == got[2:]
    assert got[0] == text.rpartition("/")[0]
