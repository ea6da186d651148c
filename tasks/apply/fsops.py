"""Filesystem moves that can never overwrite and never follow a symlink.

Every path is reached from the root's directory descriptor, in one openat2() call that
refuses any symlink and any way out of the root (RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH), or
where the kernel has no openat2 one component at a time, each opened with O_NOFOLLOW |
O_DIRECTORY: a directory swapped for a symlink (even during the apply) makes the lookup fail
with UnsafePath instead of leading outside the root. Renames use
renameat2(RENAME_NOREPLACE); where the filesystem refuses that flag, link() then unlink(),
which also fails rather than replace an existing name. Never os.replace or shutil.move.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

import blake3

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_RENAME_NOREPLACE = 1
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)
COPY_BLOCK = 1024 * 1024


class UnsafePath(OSError):
    """A component of the path is a symlink or not a directory: refuse to go through it."""


class Identity(NamedTuple):
    """What the scan saw of a file; apply and rollback act only on a file that still matches.
    A named tuple, not a dataclass: one is made per item, and a frozen dataclass costs four
    times as much to make (200,000 a run)."""

    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Identity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def matches(self, st: os.stat_result, same_inode: bool = True) -> bool:
        if not stat.S_ISREG(st.st_mode):
            return False
        if same_inode and (st.st_dev, st.st_ino) != (self.dev, self.ino):
            return False
        return (st.st_size, st.st_mtime_ns) == (self.size, self.mtime_ns)


@contextmanager
def open_root(root: bytes) -> Iterator[int]:
    fd = os.open(root, _DIR_FLAGS)
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def parent_of(
    root_fd: int,
    rel: bytes,
    create: bool = False,
    before_mkdir: Callable[[bytes], None] = lambda rel_dir: None,
) -> Iterator[tuple[int, bytes]]:
    """(descriptor of the directory holding `rel`, last component), reached without following
    links. With `create`, missing directories are made; `before_mkdir` runs first (the
    journal records the intent to create before the directory exists)."""
    folder, name = split_clean(rel)
    fd = open_parent(root_fd, folder, rel, create, before_mkdir)
    try:
        yield fd, name
    finally:
        os.close(fd)


def split_clean(rel: bytes) -> tuple[bytes, bytes]:
    """(folder, name) of a clean relative path (folder b"" for the root); UnsafePath for
    anything else: absolute, empty components, `.` or `..`, a NUL (it would end the path
    early for the kernel: openat2 is called through ctypes)."""
    wrapped = b"/" + rel + b"/"
    if b"//" in wrapped or b"/./" in wrapped or b"/../" in wrapped or b"\0" in rel:
        raise UnsafePath(errno.EINVAL, "not a clean relative path", os.fsdecode(rel))
    folder, _, name = rel.rpartition(b"/")
    return folder, name


def open_parent(
    root_fd: int,
    folder: bytes,
    rel: bytes,
    create: bool = False,
    before_mkdir: Callable[[bytes], None] = lambda rel_dir: None,
) -> int:
    """A new descriptor of `folder` (clean, relative; b"" for the root) under the root, for
    `rel`: one openat2() where the kernel has it, else (or to make missing folders) the walk."""
    if not folder:
        return os.dup(root_fd)
    try:
        fd = _open_beneath(root_fd, folder, rel)
    except FileNotFoundError:
        if not create:
            raise
        fd = None
    if fd is None:
        fd = _walk(root_fd, folder.split(b"/"), rel, create, before_mkdir)
    return fd


def _walk(
    root_fd: int,
    dirs: list[bytes],
    rel: bytes,
    create: bool,
    before_mkdir: Callable[[bytes], None],
) -> int:
    fd = os.dup(root_fd)
    try:
        for i, part in enumerate(dirs):
            try:
                child = _open_dir(part, fd, rel)
            except FileNotFoundError:
                if not create:
                    raise
                before_mkdir(b"/".join(dirs[: i + 1]))
                # Made meanwhile by someone else is fine: it is opened (and checked) below.
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=fd)
                child = _open_dir(part, fd, rel)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_RESOLVE_NO_SYMLINKS, _RESOLVE_BENEATH = 0x04, 0x08
_HOW = _OpenHow(_DIR_FLAGS, 0, _RESOLVE_NO_SYMLINKS | _RESOLVE_BENEATH)
_HOW_REF, _HOW_SIZE = ctypes.byref(_HOW), ctypes.sizeof(_HOW)
_SYS_OPENAT2 = 437
# openat2 has one number on every architecture whose table was unified before it (Linux 5.6);
# elsewhere (alpha, mips, ia64) the walk is used rather than a guessed number.
_OPENAT2_MACHINES = ("x86_64", "aarch64", "arm64", "armv7l", "i686", "riscv64", "ppc64le", "s390x")


def _find_openat2() -> Callable[..., int] | None:
    uname = os.uname()
    if uname.sysname != "Linux" or uname.machine not in _OPENAT2_MACHINES:
        return None
    syscall = _libc["syscall"]  # its own function object: restype set here only
    syscall.restype = ctypes.c_long
    return functools.partial(syscall, _SYS_OPENAT2)


_openat2 = _find_openat2()


def _open_beneath(root_fd: int, path: bytes, rel: bytes) -> int | None:
    """openat2(root_fd, path) as a directory, no symlink anywhere on the way and nothing
    outside the root: the kernel checks the whole chain at once. None where it cannot say
    (no openat2 here, or a rename elsewhere raced the lookup): the caller walks instead."""
    global _openat2
    if _openat2 is None:
        return None
    fd = _openat2(root_fd, path, _HOW_REF, _HOW_SIZE)
    if fd >= 0:
        return int(fd)
    err = ctypes.get_errno()
    if err in (errno.ELOOP, errno.ENOTDIR, errno.EXDEV):
        raise UnsafePath(err, "a parent is a symlink or not a directory", os.fsdecode(rel))
    if err in (errno.ENOSYS, errno.EPERM, errno.E2BIG, errno.EINVAL):
        _openat2 = None  # not this kernel's (or a sandbox forbids it): walk from now on
        return None
    if err in (errno.EAGAIN, errno.EINTR):
        return None
    raise OSError(err, os.strerror(err), os.fsdecode(rel))


def _open_dir(part: bytes, dir_fd: int, rel: bytes) -> int:
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePath(
                exc.errno, "a parent is a symlink or not a directory", os.fsdecode(rel)
            ) from None
        raise


def lstat_at(dir_fd: int, name: bytes) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def stat_rel(root_fd: int, rel: bytes) -> os.stat_result | None:
    """lstat of `rel` under the root, or None where it is missing or cannot be reached safely."""
    try:
        with parent_of(root_fd, rel) as (fd, name):
            return lstat_at(fd, name)
    except (FileNotFoundError, NotADirectoryError, UnsafePath):
        return None


def temp_name(seq: str, kind: str) -> bytes:
    """Apply's own temporary name for item `seq` (a copy, a copy set aside, a restore).
    Short and deterministic: recovery finds its own leftovers, names stay far below 255."""
    return f".fileorg-{kind}-{hashlib.blake2s(seq.encode(), digest_size=8).hexdigest()}".encode()


def _renamed_noreplace(src_fd: int, src: bytes, dst_fd: int, dst: bytes) -> bool:
    """True when renameat2 with RENAME_NOREPLACE did the rename; False when this kernel or
    filesystem has no such flag (the caller falls back or refuses); raises any other error,
    FileExistsError for a taken `dst` included."""
    if _renameat2 is None:
        return False
    if _renameat2(src_fd, src, dst_fd, dst, _RENAME_NOREPLACE) == 0:
        return True
    _raise_unless_unsupported(dst)
    return False


def _raise_unless_unsupported(dst: bytes) -> None:
    """renameat2 failed: its error, unless it is that this kernel or filesystem has no such
    flag."""
    err = ctypes.get_errno()
    if err not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        raise OSError(err, os.strerror(err), os.fsdecode(dst))


def rename_noreplace(src_fd: int, src: bytes, dst_fd: int, dst: bytes) -> None:
    """Rename, failing with FileExistsError if `dst` exists; never replaces it."""
    rename = _renameat2  # called here, not through _renamed_noreplace: once a move
    if rename is not None:
        if rename(src_fd, src, dst_fd, dst, _RENAME_NOREPLACE) == 0:
            return
        _raise_unless_unsupported(dst)
    # Filesystems without RENAME_NOREPLACE: link() refuses an existing name just the same.
    # A crash between the two steps leaves both names on one inode, which recovery detects.
    os.link(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
    os.unlink(src, dir_fd=src_fd)


class NoReplaceUnsupported(OSError):
    """The filesystem cannot rename without the risk of replacing (no RENAME_NOREPLACE)."""


def rename_dir_noreplace(src_fd: int, src: bytes, dst_fd: int, dst: bytes) -> None:
    """Rename a directory, failing with FileExistsError if `dst` exists. Only renameat2 with
    RENAME_NOREPLACE can do that: a directory cannot be hard-linked, so where the flag is
    refused this raises NoReplaceUnsupported and nothing moves."""
    if _renamed_noreplace(src_fd, src, dst_fd, dst):
        return
    raise NoReplaceUnsupported(errno.EOPNOTSUPP, "no rename without replace here")


def fsync_dir(fd: int) -> None:
    os.fsync(fd)


# Directories changed by a batch, by (dev, ino), each fsynced once at the end of the batch.
Touched = dict[tuple[int, int], int]


def remember(touched: Touched, dir_fd: int) -> None:
    st = os.fstat(dir_fd)
    if (st.st_dev, st.st_ino) not in touched:
        touched[(st.st_dev, st.st_ino)] = os.dup(dir_fd)


def digest_at(dir_fd: int, name: bytes) -> bytes:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        hasher = blake3.blake3()
        while chunk := os.read(fd, COPY_BLOCK):
            hasher.update(chunk)
        return hasher.digest()
    finally:
        os.close(fd)


def check_room(dir_fd: int, size: int) -> None:
    """Refuse, before writing anything, a copy of `size` bytes that the filesystem of `dir_fd`
    has no room for (its blocks, and one more for the new name): a copy started on a full
    disk fails half-way and fills the space other moves could have used."""
    vfs = os.fstatvfs(dir_fd)
    block = vfs.f_frsize or vfs.f_bsize or 4096
    needed = (-(-size // block) + 1) * block
    free = vfs.f_bavail * block
    if needed > free:
        raise OSError(
            errno.ENOSPC, f"no space on the destination: {needed:,} bytes needed, {free:,} free"
        )


def copy_beside(
    src_fd: int,
    src: bytes,
    dst_fd: int,
    tmp: bytes,
    mode: int,
    atime_ns: int,
    mtime_ns: int,
    owner: tuple[int, int] | None = None,
) -> bytes:
    """Copy `src` to a new file `tmp` (O_EXCL) with the given mode, times and owner (uid,
    gid: where this user may give it, as root may), fsynced. Returns the content digest of
    what was written. On any failure (a full disk, an I/O error, an interrupt) the partial
    copy is removed before the error goes on."""
    in_fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_fd)
    try:
        out_fd = os.open(
            tmp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=dst_fd,
        )
        try:
            digest = _copy_data(in_fd, out_fd)
            if owner is not None:
                with contextlib.suppress(PermissionError):  # not root: the file is ours
                    os.fchown(out_fd, *owner)
            os.fchmod(out_fd, stat.S_IMODE(mode))  # after fchown, which clears setuid
            os.utime(out_fd, ns=(atime_ns, mtime_ns))
            os.fsync(out_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dst_fd)  # ours: made O_EXCL just above
            raise
        finally:
            os.close(out_fd)
    finally:
        os.close(in_fd)
    return digest


def _copy_data(in_fd: int, out_fd: int) -> bytes:
    hasher = blake3.blake3()
    while chunk := os.read(in_fd, COPY_BLOCK):
        hasher.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(out_fd, view) :]
    return hasher.digest()
