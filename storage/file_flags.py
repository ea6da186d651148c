"""Inode flags (what lsattr shows, chattr sets): why a change the permission bits allow fails.

An immutable (chattr +i) or append-only (chattr +a) file or folder refuses rename, unlink and
link with EPERM, whatever its mode and owner, root included. Worded as the kernel's
"Operation not permitted", or as "no write permission", it sends a user to chmod, which
changes nothing; named, it says what to undo (chattr -i). Read with FS_IOC_GETFLAGS on the
entry itself (never a symlink's target), only for a regular file or a folder (opening a
device could act on it); a filesystem without these flags (tmpfs, most network ones) answers
ENOTTY or EOPNOTSUPP: no flags. Read only after a refusal, never per file: it costs an open.
"""

from __future__ import annotations

import fcntl
import os
import stat
import struct
import sys

# _IOR('f', 1, long): the request's size is a long's, though the kernel reads and writes an int.
FS_IOC_GETFLAGS = (2 << 30) | (struct.calcsize("l") << 16) | (ord("f") << 8) | 1
FS_IMMUTABLE_FL = 0x10
FS_APPEND_FL = 0x20
_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def flags_of(dir_fd: int | None, name: bytes) -> int:
    """The inode flags of `name` in the folder `dir_fd` (b"." for the folder itself; None: an
    absolute path); 0 where it has none, is neither a file nor a folder, or they cannot be
    read."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            return 0
        fd = os.open(name, _OPEN, dir_fd=dir_fd)
    except OSError:
        return 0
    try:
        got = fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))
    except OSError:
        return 0
    finally:
        os.close(fd)
    return int.from_bytes(got[:4], sys.byteorder)


def refusing(flags: int) -> tuple[str, str] | None:
    """(what the flag that refuses renames is called, the chattr that sets it), or None."""
    if flags & FS_IMMUTABLE_FL:
        return "immutable", "chattr +i"
    if flags & FS_APPEND_FL:
        return "append-only", "chattr +a"
    return None


def described(flags: int) -> str | None:
    """'immutable (chattr +i)', 'append-only (chattr +a)', or None for neither."""
    found = refusing(flags)
    return None if found is None else f"{found[0]} ({found[1]})"
