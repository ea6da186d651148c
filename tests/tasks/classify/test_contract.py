"""What classification promises on every backend, written once and run on a temp folder and
on a moto bucket (the `root` fixture): the same bytes under the same name get the same
category and date, with the date's source; what the scan left alone is not classified; the
answers for unchanged files are reused, a changed file is read again."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa
import pytest

from storage import manifests
from storage.locations import DataStore
from tasks.classify import stage as classify
from tests.roots import TreeRoot
from tests.tasks.pipeline import classify_op, exif_jpeg, scan_op, stage_rows

SHOT = datetime(2019, 4, 12, 15, 30, 0)
PDF_HEAD = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64


def mtime_of(root: TreeRoot, rel: str) -> datetime:
    return datetime(1970, 1, 1) + timedelta(microseconds=root.stat(rel).mtime_ns // 1000)


def test_the_same_bytes_get_the_same_category_and_date(root: TreeRoot, store: DataStore) -> None:
    root.write("camera/IMG_0001.jpg", exif_jpeg("2019:04:12 15:30:00"))
    root.write("notes/2018-03-04 minutes.txt", b"minutes")
    root.write("blob", PDF_HEAD + b"\0" * 20_000)  # no extension: its magic bytes say
    root.write("picture", PNG_HEAD)
    root.write("plain.txt", b"nothing to date it by")
    root.write("empty.png", b"")
    op_dir, _ = scan_op(store, root.url)

    counts = classify_op(store, op_dir, root.url)

    rows = {r["path"]: r for r in stage_rows(store, op_dir, "classify")}
    got = {p: (r["category"], r["ext"], r["date"], r["date_source"]) for p, r in rows.items()}
    assert got == {
        b"camera/IMG_0001.jpg": ("images", "jpg", SHOT, "exif"),
        b"notes/2018-03-04 minutes.txt": ("documents", "txt", datetime(2018, 3, 4), "filename"),
        b"blob": ("documents", "", mtime_of(root, "blob"), "mtime"),
        b"picture": ("images", "", mtime_of(root, "picture"), "mtime"),
        b"plain.txt": ("documents", "txt", mtime_of(root, "plain.txt"), "mtime"),
        b"empty.png": ("images", "png", mtime_of(root, "empty.png"), "mtime"),
    }
    assert all(r["error"] is None for r in rows.values())
    assert (rows[b"camera/IMG_0001.jpg"]["year"], rows[b"camera/IMG_0001.jpg"]["month"]) == (
        2019,
        4,
    )
    assert counts == {"files": 6, "cached": 0, "skipped_shard": 0}


def test_what_the_scan_left_alone_is_not_classified(root: TreeRoot, store: DataStore) -> None:
    root.write(".bashrc", b"alias ll='ls -l'\n")
    root.write("Photos/.DS_Store", b"\x00\x00\x00\x01Bud1")
    root.write("Photos/IMG.jpg", exif_jpeg("2015:05:07 10:11:12"))
    op_dir, _ = scan_op(store, root.url)

    classify_op(store, op_dir, root.url)

    assert [r["path"] for r in stage_rows(store, op_dir, "classify")] == [b"Photos/IMG.jpg"]


def test_unchanged_files_reuse_their_answers_and_a_changed_one_is_read_again(
    root: TreeRoot, store: DataStore
) -> None:
    root.write("a.jpg", exif_jpeg("2019:04:12 15:30:00"))
    root.write("b.jpg", exif_jpeg("2019:04:12 15:30:00"))
    first, _ = scan_op(store, root.url)
    classify_op(store, first, root.url)
    root.remove("b.jpg")
    root.write("b.jpg", exif_jpeg("2001:02:03 04:05:06"))

    second, _ = scan_op(store, root.url)
    counts = classify_op(store, second, root.url, prev_dir=first)

    assert counts == {"files": 2, "cached": 1, "skipped_shard": 0}
    dates = {r["path"]: r["date"] for r in stage_rows(store, second, "classify")}
    assert dates == {b"a.jpg": SHOT, b"b.jpg": datetime(2001, 2, 3, 4, 5, 6)}


def test_a_shard_of_unchanged_files_is_the_last_shard_copied_without_a_query(
    root: TreeRoot, store: DataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    root.write("a.jpg", exif_jpeg("2019:04:12 15:30:00"))
    root.write("notes.txt", b"notes")
    root.write("blob", PDF_HEAD)
    first, _ = scan_op(store, root.url)
    classify_op(store, first, root.url)
    second, _ = scan_op(store, root.url)

    def no_join(*args: object) -> object:
        raise AssertionError("the unchanged shard was joined in DuckDB")

    monkeypatch.setattr(classify, "_cached", no_join)
    counts = classify_op(store, second, root.url, prev_dir=first)

    assert counts == {"files": 3, "cached": 3, "skipped_shard": 0}
    shard = manifests.shard_path(first, "classify", 0)
    assert store.read_bytes(shard.replace(first, second)) == store.read_bytes(shard)


def test_an_answer_with_an_error_in_an_unchanged_shard_is_read_again(
    root: TreeRoot, store: DataStore
) -> None:
    root.write("a.jpg", exif_jpeg("2019:04:12 15:30:00"))
    root.write("b.jpg", exif_jpeg("2019:04:12 15:30:00"))
    first, _ = scan_op(store, root.url)
    classify_op(store, first, root.url)
    shard = manifests.shard_path(first, "classify", 0)
    table = manifests.read_table(store, shard)
    errors = pa.array([None, "could not read"], pa.string())
    manifests.write_table(store, shard, table.set_column(7, "error", errors))  # b.jpg's
    second, _ = scan_op(store, root.url)

    counts = classify_op(store, second, root.url, prev_dir=first)

    assert counts == {"files": 2, "cached": 1, "skipped_shard": 0}
    rows = {r["path"]: r for r in stage_rows(store, second, "classify")}
    assert [rows[p]["error"] for p in (b"a.jpg", b"b.jpg")] == [None, None]
    assert rows[b"b.jpg"]["date"] == SHOT
