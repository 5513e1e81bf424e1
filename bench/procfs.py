"""Readings from /proc shared by the benchmarks: process trees, CPU clock ticks, memory and
the whole machine's busy time.

The benchmarks run as scripts (``python bench/NAME.py``), so bench/ is on ``sys.path`` and
they import this module as ``procfs``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (index 0 is field 3, the state)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants that exist now, from /proc/*/stat parent ids."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(stat_fields(int(entry.name))[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    seen: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def start_time(pid: int) -> int:
    """When `pid` started (clock ticks after boot): tells a process from a later one."""
    return int(stat_fields(pid)[19])


def cpu_ticks(pid: int, *, reaped_children: bool = False) -> int:
    """utime + stime (+ cutime + cstime with `reaped_children`) of `pid` in ticks; 0 if gone."""
    try:
        fields = stat_fields(pid)
    except OSError:
        return 0
    return sum(int(v) for v in fields[11 : 15 if reaped_children else 13])


def tree_ticks(pids: list[int]) -> int:
    """utime + stime clock ticks of `pids` (children that already exited not included)."""
    return sum(cpu_ticks(pid) for pid in pids)


def _kib_field(path: str, key: str) -> int:
    """The kB figure on the line of a /proc file starting with `key` (0 if none or gone)."""
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def rss_kib(pid: int) -> int:
    """VmRSS of `pid` in KiB (0 when it is gone)."""
    return _kib_field(f"/proc/{pid}/status", "VmRSS:")


def pss_kib(pid: int) -> int:
    """Pss of `pid` (shared pages split between their users) in KiB (0 when it is gone)."""
    return _kib_field(f"/proc/{pid}/smaps_rollup", "Pss:")


def rss_mb(pids: list[int]) -> float:
    """Sum of VmRSS over `pids`, in MiB."""
    return sum(rss_kib(pid) for pid in pids) / 1024


def pss_mb(pids: list[int]) -> float:
    """Sum of Pss (shared pages split between their users) over `pids`, in MiB."""
    return sum(pss_kib(pid) for pid in pids) / 1024


def machine_busy_ticks() -> int:
    """Busy clock ticks of the whole machine (all CPUs), from the first line of /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields[:8]) - fields[3] - fields[4]  # without idle and iowait
