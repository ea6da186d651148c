"""The vectorized classify (tasks.classify.vector, and the stage that reads only the files
whose content matters) answers what classify_file answers file by file: on the nasty tree,
end to end, and on generated names, sizes and modification times."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import manifests
from storage.locations import DataStore
from tasks.classify import vector
from tasks.classify.local import classify_file
from tasks.classify.stage import row
from tests.tasks.pipeline import classify_op, exif_jpeg, scan_op, stage_rows
from tests.trees import make_nasty_tree


def per_file(root: Path, scanned: dict[str, object]) -> dict[str, object]:
    """The row the per-file path gives a scan row: classify_file, as the stage used to."""
    path = scanned["path"]
    assert isinstance(path, bytes)
    size, mtime_ns = scanned["size"], scanned["mtime_ns"]
    assert isinstance(size, int) and isinstance(mtime_ns, int)
    found = classify_file(os.fsencode(root) + b"/" + path, os.path.basename(path), size, mtime_ns)
    return row(path, found)


def test_the_nasty_tree_gets_the_answers_of_classify_file(tmp_path: Path, store: DataStore) -> None:
    root = tmp_path / "root"
    make_nasty_tree(root)
    extra = {
        b"IMG_20190412_153000.jpg": exif_jpeg("2019:04:12 15:30:00"),
        b"x.\xff": b"%PDF-1.7\n",  # an extension that is not UTF-8, read for its magic
        b"Archive.TAR.GZ": b"\x1f\x8b\x08" + b"\0" * 40,
        b"\xd9\xa2\xd9\xa0\xd9\xa1\xd9\xa9\xd9\xa0\xd9\xa4\xd9\xa1\xd9\xa2.txt": b"arabic",
        b"noext": b"\x89PNG\r\n\x1a\n" + b"\0" * 40,
        b"2019-04-12 at 3.30.00 PM.md": b"notes",
        b"empty.jpg": b"",
    }
    for name, data in extra.items():
        (root / os.fsdecode(name)).write_bytes(data)
    op_dir, _ = scan_op(store, str(root))

    classify_op(store, op_dir, str(root))

    got = stage_rows(store, op_dir, "classify")
    scanned = [
        r
        for r in stage_rows(store, op_dir, "scan")
        if r["kind"] == "file" and r["left_alone"] is None
    ]
    assert len(got) == len(scanned) > len(extra)
    assert got == [per_file(root, r) for r in scanned]


# Names made of what the rules look at: dots, spaces, digits of two scripts, letters whose
# lowercase is odd (Kelvin sign, capital sigma, dotted I), bytes that are not UTF-8, and the
# extensions the rules know.
_PIECES = st.sampled_from(
    [
        b".", b"..", b" ", b"\n", b"_", b"-", b"T", b"at", b"2019", b"04", b"12", b"1530",
        b"00", b"20190412", b"999999", b"153000123", b"PM", b"a", b"Z", b"tar", b"TAR",
        b"\xe2\x84\xaa", b"\xce\xa3", b"\xc4\xb0", b"\xd9\xa2", b"\xff", b"\xe9", b"\t",
        b"jpg", b"JPEG", b"mp4", b"MOV", b"mp3", b"gz", b"pdf", b"txt", b"pyc", b"\x1c",
    ]
)  # fmt: skip
_NAMES = st.lists(_PIECES, min_size=1, max_size=8).map(b"".join)
_YEAR_NS = 365 * 86_400 * 10**9
_NOW_YEAR = datetime.now(UTC).year
_NEXT_YEARS_NS = (
    (datetime(_NOW_YEAR + 2, 1, 1) - datetime(1970, 1, 1)) // timedelta(microseconds=1) * 1000
)  # the first time past next year: not plausible
# 1971-01-01 is the first plausible time.
_EDGES = st.sampled_from(
    [0, -1, -999, 999, 1000, 10**9, _YEAR_NS, _YEAR_NS - 1, _NEXT_YEARS_NS, _NEXT_YEARS_NS - 1]
)
_MTIMES = st.one_of(st.integers(-(2**63), 2**63 - 1), _EDGES, st.integers(0, 60 * _YEAR_NS))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_NAMES, st.integers(0, 3), _MTIMES), min_size=1, max_size=20))
def test_generated_names_sizes_and_times_get_the_answers_of_classify_file(
    files: list[tuple[bytes, int, int]],
) -> None:
    paths = [b"some dir/" + name.replace(b"/", b"_") for name, _, _ in files]
    table = pa.table(
        {
            "path": pa.array(paths, pa.binary()),
            "size": pa.array([size for _, size, _ in files], pa.int64()),
            "mtime_ns": pa.array([mtime for _, _, mtime in files], pa.int64()),
        }
    )

    by_name, wanted = vector.classify_names(table, manifests.CLASSIFY)

    missing = b"/nonexistent-root-of-fileorg-tests/"
    for path, got, read, (_, size, mtime_ns) in zip(
        paths, by_name.to_pylist(), wanted.to_pylist(), files, strict=True
    ):
        name = os.path.basename(path)
        old = classify_file(missing + path, name, size, mtime_ns)
        # classify_file opens what the pool must read (and finds nothing here)...
        assert read == (old.error is not None and old.error.startswith("open:"))
        # ...and what the names and times alone say is what it says of an empty file.
        assert got == row(path, old if not read else classify_file(missing, name, 0, mtime_ns))
