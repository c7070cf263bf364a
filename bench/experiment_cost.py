"""What `cnnlab experiment run` costs: CPU-seconds (runs and driver), wall, runs trained/reused.

    python bench/experiment_cost.py --runs-dir /tmp/runall/runs -- all --jobs 2
    python bench/experiment_cost.py --runs-dir /tmp/runall/runs --summary-only

Runs ``cnnlab experiment run <args> --runs-dir DIR`` in a child process (unless
``--summary-only``), then reads DIR back: every ``experiment.json`` (jobs, their run ids and
``reused``), every content-addressed run folder (``by-id/<id>/executor.json``: the run's own
CPU-seconds) and prints one JSON object: wall seconds, total CPU-seconds of the child and
everything it waited for (``getrusage(RUSAGE_CHILDREN)``: driver plus worker processes),
the CPU-seconds inside the runs, runs trained and jobs served by a shared or earlier run,
and CPU-seconds per recipe (a shared run counted once, for the first recipe that lists it).
CPU-seconds, unlike wall time, do not grow when other programs share the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def summary(runs_dir: Path) -> dict:
    """Runs, reuse and CPU-seconds of the experiments under ``runs_dir``."""
    by_id = runs_dir / "by-id"
    runs = {d.name: json.loads((d / "executor.json").read_text())
            for d in sorted(by_id.glob("*")) if (d / "executor.json").is_file()}
    finished = {d.name for d in by_id.glob("*") if (d / "result.json").is_file()}
    per_recipe: dict[str, dict] = {}
    counted: set[str] = set()
    jobs = reused = 0
    for path in sorted(runs_dir.glob("*/experiment.json")):
        doc = json.loads(path.read_text())
        name = doc["recipe"]["name"]
        entry = per_recipe.setdefault(name, {"jobs": 0, "runs_counted": 0, "cpu_s": 0.0,
                                             "budget": doc.get("budget"),
                                             "seeds": doc.get("seeds")})
        for job in doc["jobs"]:
            rid = job.get("run_id")
            if rid is None:
                continue
            jobs += 1
            entry["jobs"] += 1
            reused += job.get("reused") is not None
            if rid not in counted and rid in runs:
                counted.add(rid)
                entry["runs_counted"] += 1
                entry["cpu_s"] += runs[rid].get("cpu_s", 0.0)
    return {"runs_dir": str(runs_dir), "run_folders_finished": len(finished),
            "runs_with_cpu_record": len(runs),
            "cpu_s_in_runs": round(sum(r.get("cpu_s", 0.0) for r in runs.values()), 1),
            "jobs": jobs, "jobs_served_by_shared_or_earlier_run": reused,
            "per_recipe": {k: {**v, "cpu_s": round(v["cpu_s"], 1)}
                           for k, v in per_recipe.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs-dir", required=True, type=Path)
    ap.add_argument("--summary-only", action="store_true", help="only read DIR back")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--fresh", action="store_true", help="delete DIR first (nothing reused)")
    ap.add_argument("args", nargs="*", help="arguments of `cnnlab experiment run`")
    args = ap.parse_args()
    out: dict = {}
    if args.fresh and args.runs_dir.exists():
        shutil.rmtree(args.runs_dir)
    if not args.summary_only:
        cmd = [sys.executable, "-m", "cnnlab", "experiment", "run", *args.args,
               "--runs-dir", str(args.runs_dir)]
        t0, c0, load0 = time.perf_counter(), _children_cpu(), os.getloadavg()[0]
        rc = subprocess.run(cmd).returncode
        out = {"command": " ".join(cmd[1:]), "returncode": rc,
               "wall_s": round(time.perf_counter() - t0, 1),
               "cpu_s_total": round(_children_cpu() - c0, 1),
               "load_avg_start": load0, "load_avg_end": os.getloadavg()[0]}
    out.update(summary(args.runs_dir))
    if "cpu_s_total" in out:
        out["cpu_s_driver_and_startup"] = round(out["cpu_s_total"] - out["cpu_s_in_runs"], 1)
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return int(out.get("returncode", 0))


if __name__ == "__main__":
    sys.exit(main())
