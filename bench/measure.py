"""Measuring a command from outside, as a whole process tree: wall time, the peak RSS and PSS of
the tree (the CLI plus its pool workers and servers, which are separate processes) and the bytes
it read. Used by every benchmark through bench/common.py."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_bytes()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _descendants(pid: int) -> list[int]:
    children = _children_map()
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(children.get(p, []))
    return out


def _status_kb(pid: int) -> tuple[int, int]:
    rss = hwm = 0
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith(b"VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def _pss_kb(pid: int) -> int:
    """Proportional set size: pages shared by the forkserver's children count once overall."""
    with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
        for line in f:
            if line.startswith(b"Pss:"):
                return int(line.split()[1])
    return 0


def _io(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/io", "rb") as f:
        for line in f:
            key, value = line.split(b":")
            out[key.decode()] = int(value)
    return out


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


@dataclass
class _Proc:
    cmdline: str
    hwm_kb: int = 0
    read_bytes: int = 0
    rchar: int = 0


@dataclass
class TreeSampler:
    """Samples a process tree every `interval` seconds: the largest sum of RSS seen at once,
    each process's peak RSS (VmHWM) and its I/O counters (the last value seen before it exited).

    Short-lived processes and the last interval before a process exits can be missed: the
    figures are lower bounds, good to a few percent on runs of more than a few seconds.
    """

    pid: int
    interval: float = 0.2
    peak_tree_rss_kb: int = 0
    peak_tree_pss_kb: int = 0
    procs: dict[int, _Proc] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        total = total_pss = 0
        for pid in _descendants(self.pid):
            try:
                rss, hwm = _status_kb(pid)
                pss = _pss_kb(pid)
                io = _io(pid)
            except (OSError, ValueError):
                continue
            proc = self.procs.get(pid)
            if proc is None:
                proc = self.procs[pid] = _Proc(_cmdline(pid))
            proc.hwm_kb = max(proc.hwm_kb, hwm)
            proc.read_bytes = max(proc.read_bytes, io.get("read_bytes", 0))
            proc.rchar = max(proc.rchar, io.get("rchar", 0))
            total += rss
            total_pss += pss
        self.peak_tree_rss_kb = max(self.peak_tree_rss_kb, total)
        self.peak_tree_pss_kb = max(self.peak_tree_pss_kb, total_pss)


@dataclass
class Measured:
    cmd: list[str]
    returncode: int
    wall_s: float
    stdout: str
    stderr: str
    main_maxrss_kb: int | None  # /usr/bin/time -v "Maximum resident set size" of the command
    peak_tree_rss_kb: int  # largest sum of RSS over the process tree at one sample
    peak_tree_pss_kb: int  # the same with PSS: shared pages counted once (the real footprint)
    sum_peak_rss_kb: int  # sum over processes of each one's own peak (an upper bound)
    pool_workers: int  # processes of the tree that ran multiprocessing (pool, forkserver)
    read_bytes: int  # bytes the tree fetched from storage (/proc/PID/io read_bytes)
    rchar: int  # bytes the tree read through read()-like calls, page cache included


def _maxrss_from_time(text: str) -> int | None:
    for line in text.splitlines():
        if "Maximum resident set size" in line:
            return int(line.rsplit(":", 1)[1])
    return None


def run_measured(
    cmd: Sequence[str], env: dict[str, str] | None = None, cwd: str | None = None
) -> Measured:
    """Run `cmd` under /usr/bin/time -v, sampling its process tree."""
    timefile = Path(f"/tmp/bench-time-{os.getpid()}.txt")
    full = ["/usr/bin/time", "-v", "-o", str(timefile), *cmd]
    started = time.perf_counter()
    proc = subprocess.Popen(full, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    sampler.stop()
    maxrss = _maxrss_from_time(timefile.read_text()) if timefile.exists() else None
    timefile.unlink(missing_ok=True)
    tree = [p for pid, p in sampler.procs.items() if pid != proc.pid]  # not /usr/bin/time
    return Measured(
        cmd=list(cmd),
        returncode=proc.returncode,
        wall_s=wall,
        stdout=out.decode(errors="replace"),
        stderr=err.decode(errors="replace"),
        main_maxrss_kb=maxrss,
        peak_tree_rss_kb=sampler.peak_tree_rss_kb,
        peak_tree_pss_kb=sampler.peak_tree_pss_kb,
        sum_peak_rss_kb=sum(p.hwm_kb for p in tree),
        pool_workers=sum(1 for p in tree if "multiprocessing" in p.cmdline),
        read_bytes=sum(p.read_bytes for p in tree),
        rchar=sum(p.rchar for p in tree),
    )
