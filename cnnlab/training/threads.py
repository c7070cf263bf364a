"""The default CPU thread count of a run: the cores this process may use (its affinity) less
the machine's current load, at least 1 -- never every core of a busy machine.

Measured in ``bench/bench_threads.py`` (docs/training.md, "Threads"): on a shared machine all
cores is several times slower than one thread, because torch's threads wait for each other
while other processes hold the cores; on an idle one, all cores is fastest. Taking the free
cores at start gets the first without losing the second.
"""

from __future__ import annotations

import os
from pathlib import Path


def available_cpus() -> int:
    """CPUs this process may run on (``sched_getaffinity``: a container's or ``taskset``'s
    limit), else ``os.cpu_count()``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def load_average() -> float:
    """The load on the CPUs now: the larger of the 1-minute load average and the processes
    runnable at this instant besides this one (``/proc/loadavg``; the average lags a load
    that started seconds ago); 0 where the OS reports neither."""
    try:
        avg = max(0.0, os.getloadavg()[0])
    except (AttributeError, OSError):
        avg = 0.0
    try:
        fields = Path("/proc/loadavg").read_text().split()
        now = int(fields[3].split("/")[0]) - 1  # running/total; this process is running
    except (OSError, IndexError, ValueError):
        now = 0
    return max(avg, float(now))


def auto_threads(cpus: int | None = None, load: float | None = None) -> int:
    """Free cores: ``cpus - load`` rounded to the nearest integer, between 1 and ``cpus``."""
    cpus = available_cpus() if cpus is None else cpus
    load = load_average() if load is None else load
    return max(1, min(cpus, int(cpus - load + 0.5)))
