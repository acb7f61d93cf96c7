"""CPU time used by processes (and their children) between two points, read from /proc.

The benchmark machine is shared by the load generator, the gateway and the PACS; the cores each
one used during a cell explain a rate better than the rate alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

_TICKS = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def _process_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def _machine() -> tuple[int, int]:
    """(busy, idle) clock ticks of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat", "rb") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, idle


def tree_seconds(pid: int, tree: Mapping[int, list[int]] | None = None) -> float:
    """CPU seconds of ``pid`` and its live descendants (gateway workers, Orthanc's threads)."""
    tree = _children() if tree is None else tree
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += _process_seconds(current)
        todo.extend(tree.get(current, ()))
    return total


class CPUMeter:
    """Cores used per named process tree (or single process) between ``start()`` and ``stop()``."""

    def __init__(self, trees: Mapping[str, int], alone: Mapping[str, int] | None = None) -> None:
        self.trees = dict(trees)
        self.alone = dict(alone or {})
        self.pids = {**self.trees, **self.alone}
        self._start: dict[str, float] = {}
        self._machine0 = (0, 0)
        self._t0 = 0.0

    def _sample(self) -> dict[str, float]:
        tree = _children()
        sample = {name: tree_seconds(pid, tree) for name, pid in self.trees.items()}
        sample.update({name: _process_seconds(pid) for name, pid in self.alone.items()})
        return sample

    def start(self) -> None:
        self._t0 = os.times().elapsed
        self._start = self._sample()
        self._machine0 = _machine()

    def stop(self) -> dict[str, float]:
        """Cores (CPU seconds per wall second) each tree used since ``start()``."""
        wall = os.times().elapsed - self._t0
        end = self._sample()
        machine = _machine()
        if wall <= 0:
            return {name: 0.0 for name in self.pids}
        cores = {name: round((end[name] - self._start[name]) / wall, 2) for name in self.pids}
        busy = (machine[0] - self._machine0[0]) / _TICKS / wall
        cores["machine"] = round(busy, 2)  # all processes, kernel work included
        return cores
