"""Run every benchmark once, in its quick form unless ``--full``; each prints its own ratios.

    python bench/run_all.py           # quick versions (minutes)
    python bench/run_all.py --full    # the figures quoted in the docs (tens of minutes)

Each benchmark measures cnnlab against a peer in the same process, so the ratios hold on a
noisy machine; absolute times are not comparable across machines.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (script, quick args, full args)
BENCHES = [
    ("bench_analyze.py", ["--repeat", "3"], ["--repeat", "9"]),
    ("bench_ref_conv.py", ["--repeat", "3"], ["--repeat", "20"]),
    ("bench_train_overhead.py", ["--iterations", "100", "--repeats", "1"], []),
    ("bench_time_to_99.py", ["--quick"], []),
    ("bench_baseline_20k.py", ["--iterations", "500"], []),
    ("ttic_experiments.py", ["--quick"], []),
    # `cnnlab experiment run all`: CPU-seconds, wall, runs trained and reused (docs/experiments.md)
    ("experiment_cost.py", ["--fresh", "--runs-dir", "/tmp/cnnlab-cost-quick", "--", "all",
                            "--quick"],
     ["--fresh", "--runs-dir", "/tmp/cnnlab-cost-cpu", "--", "all", "--jobs", "2"]),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="the full-length runs")
    ap.add_argument("--only", action="append", help="run only scripts whose name contains this")
    args = ap.parse_args()
    failed = []
    for script, quick, full in BENCHES:
        if args.only and not any(o in script for o in args.only):
            continue
        cmd = [sys.executable, str(HERE / script), *(full if args.full else quick)]
        print(f"\n=== {' '.join(cmd[1:])}", flush=True)
        if subprocess.run(cmd).returncode != 0:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
