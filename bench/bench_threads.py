"""Training speed by thread count, on a quiet machine and beside a CPU hog: decides the
default of ``cnnlab train --threads`` (docs/training.md, "Threads").

Each case is a fresh ``cnnlab train`` process (baseline on MNIST, fp32, batch 50), so torch's
thread pool starts as a user's would; the hog is one busy-loop process per usable CPU,
started before the run and stopped after it. Threads: ``all`` (every usable CPU, torch's own
default), ``1``, and ``auto`` (no ``--threads``: cnnlab's default, the free cores at start).
Reports images/s of the training steps (result.json) and the load average at start.

    CNNLAB_DATA=/path/to/data python bench/bench_threads.py [--iterations 200]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cnnlab.training.bf16_probe import cpu_name
from cnnlab.training.threads import available_cpus, load_average


def _hogs(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def _train(runs: Path, name: str, threads: str, iterations: int) -> dict:
    flags = ["--threads", threads] if threads != "auto" else []
    cmd = [sys.executable, "-m", "cnnlab", "train", "--model", "baseline", "--iterations",
           str(iterations), "--eval-every", str(iterations), "--train-eval-size", "1000",
           "--no-plots", "--no-tensorboard", "--progress", "off", "--runs-dir", str(runs),
           "--out-name", name, *flags]
    load = load_average()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    result = json.loads((runs / name / "result.json").read_text())
    env = json.loads((runs / name / "env.json").read_text())
    return {"threads": threads, "used": env["threads"], "load": round(load, 1),
            "images_per_s": round(result["images_per_s"], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=1,
                    help="rounds over the thread counts (order rotated each round)")
    ap.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = ap.parse_args()
    cpus = available_cpus()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for hog in (0, cpus):
            procs = _hogs(hog)
            try:
                if hog:
                    time.sleep(5)  # let the hog show in the load average
                order = [str(cpus), "1", "auto"]
                for rep in range(args.repeats):
                    for threads in order[rep % 3:] + order[:rep % 3]:
                        row = _train(Path(tmp), f"h{hog}-t{threads}-r{rep}", threads,
                                     args.iterations)
                        row["hog"] = hog
                        rows.append(row)
                        print(f"hog {hog} proc(s), --threads {threads:>4} (used "
                              f"{row['used']}), load {row['load']:5.1f}: "
                              f"{row['images_per_s']:8.1f} img/s", flush=True)
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
    print(f"CPU: {cpu_name()}, {cpus} usable CPU(s), {os.cpu_count()} online; "
          f"{args.iterations} iterations of baseline, batch 50")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
