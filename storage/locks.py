"""One apply or rollback at a time per operation and per overlapping root, across processes.

Used by the flows themselves (flows.apply), so the CLI's in-process runs and the runs the API
starts take the same lock. A run that changes files holds, for as long as it works:

    {lock dir}/{operation id}.lock   an OS lock (flock) on this file, held open by the run
    {lock dir}/{operation id}.json   who holds it: operation, root, apply or rollback, pid...

and `registry.lock` is taken for the short moment a run claims or releases its lock, so that
looking for overlapping roots and claiming one's own are one step. The kernel drops a flock
when its process ends, however it ends (kill -9 too): a `.json` whose `.lock` can be locked
by anyone is left by a dead run; it is removed, and its root is free again.

The lock folder is `locks/` in the data folder when the data folder is local (every process
that shares the data folder shares the locks: processes on one machine, or machines on an NFS
mount with working flock). With an object-store data folder there is no flock: the lock folder
is FILEORG_LOCK_DIR, which must be a folder every worker shares for the lock to hold across
machines; without it the folder is local to each machine (`authoritative` is then False and
nobody concludes from a free lock that a run elsewhere is gone). docs/security.md says more.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Literal

from storage import operations
from storage.errors import OperationNotFound, OperationStateError
from storage.locations import DataStore
from storage.operations import OperationRecord
from storage.roots import overlaps

Action = Literal["apply", "rollback"]
REGISTRY = "registry.lock"
# Tests only: a run reaching the point named PAUSE_AT_ENV ("locked": it holds its lock;
# "shard": an apply shard is done; "announced": a batch of apply's or rollback's items is
# journaled as intents, none carried out yet) creates {PAUSE_ENV}/{point} and waits for
# {PAUSE_ENV}/go, so that a test acts while the run is provably there (a file barrier, not a
# sleep).
PAUSE_ENV = "FILEORG_TEST_PAUSE_DIR"
PAUSE_AT_ENV = "FILEORG_TEST_PAUSE_AT"


class Busy(OperationStateError):
    """Another run holds the operation or an overlapping root (CLI exit 2, HTTP 409)."""


@dataclass(frozen=True)
class Holder:
    operation_id: str
    root: str
    action: Action
    pid: int
    host: str
    since: str
    flow_run_id: str | None = None

    def doing(self) -> str:
        verb = "applying" if self.action == "apply" else "rolling back"
        where = f"pid {self.pid} on {self.host}"
        return f"operation {self.operation_id} is {verb} {self.root} ({where})"


def lock_dir(store: DataStore) -> str:
    from storage.settings import get_settings

    configured = get_settings().lock_dir
    if configured:
        return os.path.abspath(os.path.expanduser(configured))
    if store.is_local:
        return f"{store.base}/locks"
    # The runtime folder when the session has one (XDG_RUNTIME_DIR: per boot, like a flock);
    # services, cron and CI often have none, and platformdirs would warn and guess in /tmp.
    from platformdirs import user_runtime_dir, user_state_dir

    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(user_runtime_dir("fileorg", appauthor=False), "locks")
    return os.path.join(user_state_dir("fileorg", appauthor=False), "locks")


def authoritative(store: DataStore) -> bool:
    """A free lock proves that no run anywhere is applying or rolling back: the lock folder is
    shared by every process that can work on this data folder."""
    from storage.settings import get_settings

    return store.is_local or bool(get_settings().lock_dir)


@contextlib.contextmanager
def _registry(folder: str) -> Iterator[None]:
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(folder, REGISTRY), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held for milliseconds; dies with its process
        yield
    finally:
        os.close(fd)


def _live(folder: str) -> list[Holder]:
    """The runs holding a lock now (the registry lock is held); removes what dead runs left."""
    found = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".json"):
            continue
        meta, lock = os.path.join(folder, name), os.path.join(folder, name[:-5] + ".lock")
        try:
            with open(meta, "rb") as noted:
                holder = Holder(**json.loads(noted.read()))
        except (OSError, ValueError, TypeError):
            holder = None
        if holder is not None and _held(lock):
            found.append(holder)
            continue
        for path in (meta, lock):  # a dead run's (or a torn write's) leftovers
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    return found


def _held(lock: str) -> bool:
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock this probe may have taken
    return False


def holders(store: DataStore) -> list[Holder]:
    folder = lock_dir(store)
    if not os.path.isdir(folder):
        return []
    with _registry(folder):
        return _live(folder)


def refusal(found: list[Holder], operation_id: str, root: str) -> str | None:
    """The one line that refuses a run of `operation_id` on `root`, or None."""
    for holder in found:
        if holder.operation_id == operation_id:
            return f"{holder.doing()}: wait for it to finish"
    for holder in found:
        if overlaps(holder.root, root):
            return f"{holder.doing()}, which overlaps {root}: wait for it to finish"
    return None


def refuse_busy(store: DataStore, operation_id: str, root: str) -> None:
    """Busy when a run holds this operation or an overlapping root (a check before asking)."""
    line = refusal(holders(store), operation_id, root)
    if line:
        raise Busy(line)


def overlapping(store: DataStore, root: str) -> Holder | None:
    """The run applying or rolling back `root`, a folder in it or one holding it, if any."""
    return next((h for h in holders(store) if overlaps(h.root, root)), None)


@contextlib.contextmanager
def held(
    store: DataStore, operation_id: str, root: str, action: Action, flow_run_id: str | None = None
) -> Iterator[Holder]:
    """Hold the lock of `operation_id` on `root` for the body, or raise Busy at once."""
    folder = lock_dir(store)
    lock = os.path.join(folder, f"{operation_id}.lock")
    meta = os.path.join(folder, f"{operation_id}.json")
    holder = Holder(
        operation_id,
        root,
        action,
        os.getpid(),
        socket.gethostname(),
        datetime.now(UTC).isoformat(timespec="seconds"),
        flow_run_id,
    )
    with _registry(folder):
        line = refusal(_live(folder), operation_id, root)
        if line:
            raise Busy(line)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: every claim is made in here
        _write(meta, json.dumps(asdict(holder)).encode())
    try:
        pause_for_tests("locked")
        yield holder
    finally:
        with _registry(folder):
            for path in (meta, lock):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            os.close(fd)
            _settle(store, operation_id)  # an exception or a stop left it half done


@contextlib.contextmanager
def schedule_slot(store: DataStore, schedule: str) -> Iterator[bool]:
    """True for the body when no other run of `schedule` (any stable text naming it: its
    ticket) is going, False when one is; the slot is free again when its holder ends, however
    it ends (a flock, like the operation locks). A schedule's runs take their turns: a run that
    starts while the previous one still works skips, instead of scanning the same root twice
    at once or queueing up behind a slow one."""
    folder = lock_dir(store)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    name = hashlib.sha256(schedule.encode()).hexdigest()[:32]
    fd = os.open(os.path.join(folder, f"schedule-{name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        pause_for_tests("schedule")
        yield True
    finally:
        os.close(fd)  # the file stays: unlinking it would let two runs lock two inodes


def reconcile(store: DataStore, record: OperationRecord) -> OperationRecord:
    """`record` as it stands: an apply or rollback that nobody holds the lock of any more is
    interrupted (its process ended: a crash, kill -9, a stop, a lost Prefect server)."""
    if record.status not in operations.WORKING or not authoritative(store):
        return record
    folder = lock_dir(store)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    with _registry(folder):
        if any(h.operation_id == record.id for h in _live(folder)):
            return record
        return _settle(store, record.id) or record


def _settle(store: DataStore, operation_id: str) -> OperationRecord | None:
    """Under the registry lock, with nobody holding the operation's: read its record again
    (its holder saves its last status before letting go) and mark it interrupted if needed."""
    try:
        record = operations.load(store, operation_id)
    except OperationNotFound:
        return None
    if record.status in operations.WORKING:
        operations.interrupt(record)
        operations.save(store, record)
    return record


def _write(path: str, data: bytes) -> None:
    temp = f"{path}.{os.getpid()}.tmp"
    with open(temp, "wb") as out:
        out.write(data)
    os.rename(temp, path)  # readers see all of it or nothing (a .tmp is never a .json)


def pause_for_tests(point: str) -> None:
    barrier = os.environ.get(PAUSE_ENV)
    if not barrier or os.environ.get(PAUSE_AT_ENV, "locked") != point:
        return
    if os.path.exists(os.path.join(barrier, point)):
        return  # the first time only
    open(os.path.join(barrier, point), "wb").close()
    deadline = time.monotonic() + 300
    while not os.path.exists(os.path.join(barrier, "go")) and time.monotonic() < deadline:
        time.sleep(0.05)
