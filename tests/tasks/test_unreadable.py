"""A file the scanning user cannot read is left alone (`unreadable`), never moved: by its
permission bits from the scan's lstat, or by a later stage's failed read (an ACL the bits do
not show); a folder the walk cannot list is a row of its own; a file in a folder that user
cannot change is left alone too (`read-only-folder`: apply could not move it out). The
machine runs as root, who reads anything, so the end-to-end test runs the stages as `nobody`
in a child process."""

from __future__ import annotations

import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storage.leave_alone import Reader, readable

NOBODY = 65534
REPO = Path(__file__).resolve().parents[2]
USER = Reader(1000, frozenset({1000, 50}))


@pytest.mark.parametrize(
    ("mode", "uid", "gid", "expected_readable"),
    [
        (0o400, 1000, 0, True),  # the owner's bits
        (0o044, 1000, 50, False),  # the owner's bits alone count for the owner
        (0o040, 0, 50, True),  # a group the reader is in
        (0o404, 0, 50, False),  # ... whose bits deny it, whatever the others' say
        (0o004, 0, 0, True),  # the others'
        (0o640, 0, 0, False),
    ],
)
def test_a_file_is_readable_by_the_bits_the_kernel_checks_for_the_reader(
    mode: int, uid: int, gid: int, expected_readable: bool
) -> None:
    assert readable(stat.S_IFREG | mode, uid, gid, USER) is expected_readable


def test_root_reads_anything() -> None:
    assert readable(stat.S_IFREG, 1000, 1000, Reader(0, frozenset({0})))


def _deny_by_acl(path: Path, uid: int) -> None:
    """A POSIX ACL denying `uid` a file its mode bits (0644) let everyone read."""
    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 0, uid), (0x04, 4, 0xFFFFFFFF)]
    entries += [(0x10, 4, 0xFFFFFFFF), (0x20, 4, 0xFFFFFFFF)]  # mask, others
    acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    os.setxattr(path, "system.posix_acl_access", acl)


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder `nobody` owns (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="fileorg-unreadable-"))
    os.chown(path, NOBODY, NOBODY)
    try:
        yield path
    finally:
        shutil.rmtree(path)


_AS_NOBODY = """
import json, sys
from pathlib import Path
from tests.apply_helpers import Operation

base = Path(sys.argv[1])
def can_read(path):
    try:
        open(base / "root" / path, "rb").close()
    except PermissionError:
        return False
    return True
readable = {path: can_read(path) for path in sys.argv[2:]}
import os
readable["frozen (writable)"] = os.access(base / "root" / "frozen", os.W_OK)
op = Operation(base)
op.plan()
rows = {src.decode(): {k: r[k] for k in ("action", "reason_code", "reason", "kind")}
        for src, r in op.rows().items()}
print(json.dumps({"uid": __import__("os").geteuid(), "readable": readable, "rows": rows,
                  "done": dict(op.apply())}))
"""


def _run_as_nobody(base: Path, *paths: str) -> dict[str, Any]:
    command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    command += [sys.executable, "-c", _AS_NOBODY, str(base), *paths]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_what_the_scanning_user_cannot_read_or_move_is_left_alone_with_reasons(
    base: Path,
) -> None:
    root = base / "root"
    (root / "docs").mkdir(parents=True)
    (root / "locked").mkdir()
    (root / "frozen").mkdir()
    (root / "frozen" / "kept.pdf").write_text("%PDF-1.4 in a folder nobody may change")
    for name in ("denied.pdf", "acl.pdf", "open.pdf", "twin.pdf"):
        (root / "docs" / name).write_text("%PDF-1.4 same size")  # shared: the prefix reads
    (root / "locked" / "inside.pdf").write_text("%PDF-1.4 in a folder nobody can list")
    for path in [root, *root.rglob("*")]:
        os.chown(path, NOBODY, NOBODY)
    os.chown(root / "docs" / "acl.pdf", 0, 0)
    _deny_by_acl(root / "docs" / "acl.pdf", NOBODY)
    (root / "docs" / "denied.pdf").chmod(0)
    (root / "locked").chmod(0)
    (root / "frozen").chmod(0o555)

    found = _run_as_nobody(base, "docs/denied.pdf", "docs/acl.pdf", "docs/open.pdf")

    assert found["uid"] == NOBODY
    expected_readable = {
        "docs/denied.pdf": False,
        "docs/acl.pdf": False,
        "docs/open.pdf": True,
        "frozen (writable)": False,
    }
    assert found["readable"] == expected_readable  # as the scanning user found them
    rows = found["rows"]
    expected_skips = {
        "docs/denied.pdf": "left alone: unreadable (no read permission)",  # by its bits
        "docs/acl.pdf": "left alone: unreadable (Permission denied)",  # by the prefix read
        "locked": "left alone: Permission denied",  # the walk could not list it
    }
    for path, expected_reason in expected_skips.items():
        assert (rows[path]["action"], rows[path]["reason_code"]) == ("skip", "unreadable")
        assert rows[path]["reason"] == expected_reason
    frozen = rows["frozen/kept.pdf"]
    assert (frozen["action"], frozen["reason_code"]) == ("skip", "read-only-folder")
    assert frozen["reason"] == (
        "left alone: in a folder the scanning user cannot change (no write permission)"
    )
    assert rows["docs/open.pdf"]["action"] == "move"
    assert found["done"].get("done", 0) >= 1
    assert (root / "docs" / "denied.pdf").exists()
    assert (root / "docs" / "acl.pdf").exists()
    assert (root / "frozen" / "kept.pdf").exists()
    assert set(found["done"]) == {"done"}  # no failure: nothing it could not move was tried
    assert not (root / "docs" / "open.pdf").exists()
