"""An immutable or append-only file or folder (chattr +i / +a) is named as such, never as a
permission problem: rename fails with EPERM whatever the mode, and a user told "no write
permission" chmods to no effect (the tryout's finding).

Setting those flags needs root (CAP_LINUX_IMMUTABLE), and a filesystem that has them: the
test folder's own when it does (ext4 here), else a small ext4 image on a loop device mounted
for the test. Every flag is cleared at the end, so that the folder can be removed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import queries
from storage.file_flags import FS_APPEND_FL, FS_IMMUTABLE_FL, flags_of
from storage.operations import PlanOptions
from storage.vocabulary import NOT_DONE_APPLY, NOT_DONE_ROLLBACK
from tests.apply_helpers import Operation, plan_rows

FS_IOC_SETFLAGS = (1 << 30) | (struct.calcsize("l") << 16) | (ord("f") << 8) | 2
STAMP = 1_555_083_000 * 10**9


def chattr(path: Path, add: int = 0, remove: int = 0) -> None:
    """chattr +i / -i and +a / -a, by the ioctl chattr makes (no e2fsprogs needed)."""
    flags = (flags_of(None, os.fsencode(path)) | add) & ~remove
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, flags.to_bytes(4, sys.byteorder) + bytes(4))
    finally:
        os.close(fd)


def _has_flags(folder: Path) -> bool:
    probe = folder / "probe"
    probe.write_bytes(b"")
    try:
        chattr(probe, add=FS_APPEND_FL)
        chattr(probe, remove=FS_APPEND_FL)
    except OSError as exc:
        if exc.errno in (errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL):
            return False
        raise
    finally:
        probe.unlink()
    return True


def _clear_flags(top: Path) -> None:
    for folder, subdirs, files in os.walk(top):
        for name in (*subdirs, *files):
            path = Path(folder) / name
            if not path.is_symlink() and flags_of(None, os.fsencode(path)):
                chattr(path, remove=FS_IMMUTABLE_FL | FS_APPEND_FL)


@pytest.fixture
def base(tmp_path: Path) -> Iterator[Path]:
    """A folder where chattr works: tmp_path, or an ext4 image mounted on it."""
    if os.geteuid() != 0:
        pytest.skip("chattr +i and +a need root (CAP_LINUX_IMMUTABLE); CI runs as root")
    if _has_flags(tmp_path):
        try:
            yield tmp_path
        finally:
            _clear_flags(tmp_path)
        return
    image, mount = tmp_path / "ext4.img", tmp_path / "mnt"
    mount.mkdir()
    with open(image, "wb") as fh:
        fh.truncate(16 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True)
    subprocess.run(["mount", "-o", "loop", image, mount], check=True)
    try:
        yield mount
    finally:
        _clear_flags(mount)
        shutil.rmtree(mount / "data", ignore_errors=True)
        subprocess.run(["umount", mount], check=True)


def tree(base: Path, files: dict[str, bytes], mode: str = "category") -> Operation:
    op = Operation(base, PlanOptions(mode=mode))  # type: ignore[arg-type]
    for i, (rel, content) in enumerate(files.items()):
        path = op.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.utime(path, ns=(STAMP + i, STAMP + i))
    return op


def reasons(op: Operation, of: str = "apply") -> dict[bytes, str]:
    kinds = NOT_DONE_APPLY if of == "apply" else NOT_DONE_ROLLBACK
    rows, _ = queries.outcome_sample(op.store, op.op_dir, kinds, 50, of)
    return {r["src"]: r["outcome_reason"] for r in rows}


def test_an_immutable_file_and_an_append_only_folder_are_named(base: Path) -> None:
    op = tree(base, {"a.txt": b"alpha", "inbox/b.txt": b"bravo", "c.txt": b"charlie"})
    op.plan()
    chattr(op.root / "a.txt", add=FS_IMMUTABLE_FL)
    chattr(op.root / "inbox", add=FS_APPEND_FL)  # names can be added, none moved out

    counts = op.apply()

    assert counts == {"done": 1, "errors": 2}
    assert reasons(op) == {
        b"a.txt": "not permitted: a.txt is immutable (chattr +i)",
        b"inbox/b.txt": "not permitted: inbox/ is append-only (chattr +a)",
    }


def test_an_immutable_destination_is_named_where_its_folder_would_be_made(base: Path) -> None:
    """Documents/ is immutable: Documents/2019/ cannot be made in it, and it is the folder
    named (the nearest one there), not the folder that does not exist yet."""
    op = tree(base, {"a.txt": b"alpha"}, mode="category_year")
    (op.root / "Documents").mkdir()
    op.plan()
    (dst,) = [r["dst"] for r in plan_rows(op.store, op.op_dir)]
    assert dst.startswith(b"Documents/2019/")
    chattr(op.root / "Documents", add=FS_IMMUTABLE_FL)

    op.apply()

    assert reasons(op) == {b"a.txt": "not permitted: Documents/ is immutable (chattr +i)"}


def test_an_immutable_folder_is_left_alone_as_immutable(base: Path) -> None:
    """os.access(W_OK) says EPERM for it, root included: the scan left it alone 'no write
    permission', and chmod would not have helped."""
    op = tree(base, {"frozen/a.txt": b"alpha"})
    chattr(op.root / "frozen", add=FS_IMMUTABLE_FL)

    op.plan()

    (row,) = plan_rows(op.store, op.op_dir)
    assert (row["action"], row["reason_code"]) == ("skip", "read-only-folder")
    assert row["reason"] == (
        "left alone: in a folder the scanning user cannot change (immutable, chattr +i)"
    )


def test_a_rollback_refused_by_an_immutable_file_names_it(base: Path) -> None:
    op = tree(base, {"a.txt": b"alpha"})
    op.plan()
    op.apply()
    chattr(op.root / "Documents" / "a.txt", add=FS_IMMUTABLE_FL)

    counts = op.rollback()

    assert counts == {"errors": 1}
    assert reasons(op, "rollback") == {
        b"a.txt": "not permitted: Documents/a.txt is immutable (chattr +i)"
    }
