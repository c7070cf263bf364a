"""Run a command next to CPU hogs and report its exit status, wall time and the load it met.

    python3 bench/bench_under_load.py --hogs 10 -- make test
    python3 bench/bench_under_load.py --hogs 0 -- make demo      # the quiet baseline

Each hog is a busy Python loop in its own process (like ``yes > /dev/null``); they are started
before the command and killed (by PID, never by name) when it ends, whatever happens. The
1-minute load average is sampled every 5 s; min / median / max are printed with the CPU model,
so a figure in the docs says what machine and what load produced it.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import threading
import time


def _hog() -> None:
    while True:
        pass


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hogs", type=int, default=10, help="busy processes beside the command")
    ap.add_argument("--first-line", default=None,
                    help="also report the seconds until the command prints a line containing this")
    ap.add_argument("--log", default=None, help="write the command's whole output here")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = ap.parse_args()
    cmd = [c for c in args.command if c != "--"] or ["make", "test"]
    hogs = [mp.Process(target=_hog, daemon=True) for _ in range(args.hogs)]
    for h in hogs:
        h.start()
    loads: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(5.0):
            loads.append(os.getloadavg()[0])

    threading.Thread(target=sample, daemon=True).start()
    t0 = time.perf_counter()
    first = None
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        tail: list[str] = []
        log = open(args.log, "w") if args.log else None  # noqa: SIM115 (closed below)
        for line in proc.stdout:
            if log is not None:
                log.write(line)
                log.flush()
            if first is None and args.first_line and args.first_line in line:
                first = time.perf_counter() - t0
            tail = (tail + [line])[-15:]
        rc = proc.wait()
        if log is not None:
            log.close()
    finally:
        done.set()
        for h in hogs:
            h.kill()
    wall = time.perf_counter() - t0
    sys.stdout.write("".join(tail))
    print(f"\ncommand: {' '.join(cmd)}")
    print(f"cpu: {_cpu_model()}, {os.cpu_count()} logical cores, {args.hogs} hogs")
    if loads:
        print(f"load average (1 min): min {min(loads):.1f}, median "
              f"{statistics.median(loads):.1f}, max {max(loads):.1f} ({len(loads)} samples)")
    if first is not None:
        print(f"first line containing {args.first_line!r}: {first:.1f} s")
    print(f"exit status {rc}, {wall:.0f} s wall ({wall / 60:.1f} min)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
