"""Where a benchmark's CPU goes, read from /proc: this process, a PostgreSQL server, the machine.

``sample(postmaster)`` notes the clock and three CPU counters; the difference of two
samples is a ``Spent``. This process's CPU includes its children once they are reaped
(a load's parsing workers, when its pool shuts down). The server's is the sum over its
postmaster and every child of it (backends, WAL writer, checkpointer, autovacuum), each
process counted from the first sample it appears in: one that ends between two samples
(a short connection) is missed, and another cluster on the machine is left out. The
machine's is the busy time of every core.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from dataclasses import dataclass, fields
from pathlib import Path

import psycopg

TICK = os.sysconf("SC_CLK_TCK")  # /proc's unit of CPU time, per second


@dataclass(frozen=True)
class Spent:
    """Seconds: wall, CPU of this process (and its reaped children), of the server's
    processes, and of the whole machine (busy time of every core)."""

    wall: float
    here: float
    server: float
    machine: float

    def per_record_us(self, n: int) -> Spent:
        return Spent(*(getattr(self, f.name) / n * 1e6 for f in fields(self)))


@dataclass(frozen=True)
class Sample:
    """The clock and the counters at one moment (``server``: CPU ticks by pid)."""

    wall: float
    here: float
    server: dict[int, int]
    machine: float

    def __sub__(self, before: Sample) -> Spent:
        ticks = sum(cpu - before.server.get(pid, 0) for pid, cpu in self.server.items())
        return Spent(self.wall - before.wall, self.here - before.here, ticks / TICK,
                     self.machine - before.machine)


def median_of(runs: list[Spent]) -> Spent:
    """Each figure's median over ``runs``."""
    return Spent(*(statistics.median(getattr(r, f.name) for r in runs) for f in fields(Spent)))


def stat_fields(text: str) -> tuple[str, int, int]:
    """(command name, parent pid, CPU ticks: user + system) of a /proc/<pid>/stat line."""
    comm = text[text.index("(") + 1:text.rindex(")")]
    rest = text[text.rindex(")") + 2:].split()
    return comm, int(rest[1]), int(rest[11]) + int(rest[12])


def server_ticks(postmaster: int) -> dict[int, int]:
    """CPU ticks of each live process of the server: its postmaster and every child of it."""
    ticks = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                comm, parent, cpu = stat_fields(Path(entry.path, "stat").read_text())
            except (OSError, ValueError):  # gone meanwhile
                continue
            if comm == "postgres" and postmaster in (int(entry.name), parent):
                ticks[int(entry.name)] = cpu
    return ticks


def machine_busy(text: str) -> float:
    """Busy CPU seconds of every core, from /proc/stat's first line (idle, iowait left out)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, text.split()[1:9])
    return (user + nice + system + irq + softirq + steal) / TICK


def sample(postmaster: int) -> Sample:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open("/proc/stat", encoding="ascii") as stat:
        busy = machine_busy(stat.readline())
    return Sample(time.perf_counter(), time.process_time() + children.ru_utime
                  + children.ru_stime, server_ticks(postmaster), busy)


def postmaster_of(server: str) -> int:
    """The pid of the server's postmaster (a backend's parent), seen in this machine's /proc."""
    with psycopg.connect(server, autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        try:
            return stat_fields(Path(f"/proc/{row[0]}/stat").read_text())[1]
        except OSError:
            raise SystemExit("the server's processes are not in this machine's /proc: "
                             "its CPU cannot be measured from here") from None
