"""Run the three TTIC recipes (video 3D CNN, bottleneck MLP with gamma, pyramid CNN): a thin
wrapper over ``cnnlab experiment run ttic_video ttic_bottleneck ttic_pyramid``.

    python bench/ttic_experiments.py --quick            # smoke run of the same code paths
    python bench/ttic_experiments.py --only pyramid     # one recipe, full settings

It trains and measures nothing of its own: the recipes' runs and their ``[measure]`` step
(cnnlab/experiments/measure.py) produce the numbers and figures of docs/ttic.md, in
``<runs-dir>/<recipe>/experiment.json`` (key ``"measure"``) and ``<runs-dir>/<recipe>/plots/``.
This script runs them and prints where they are with a few headline numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

RECIPES = {"video": "ttic_video", "bottleneck": "ttic_bottleneck", "pyramid": "ttic_pyramid"}


def headline(doc: dict[str, Any]) -> list[str]:
    """A few lines of a recipe's experiment.json: each run's test accuracy and the figures."""
    lines = [f"  {j['group']}: test {100 * j['result']['test_acc']:.1f}%"
             for j in doc.get("jobs", []) if j.get("result", {}).get("test_acc") is not None]
    m = doc.get("measure") or {}
    figures = (m.get("result") or {}).get("figures", [])
    if m:
        lines.append(f"  measure {m['kind']}: {m.get('wall_s') or 0:.0f} s; figures: "
                     + (", ".join(f for f in figures if f.endswith(".png")) or "none"))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the recipes' --quick form")
    ap.add_argument("--only", choices=tuple(RECIPES), action="append",
                    help="run only these recipes (repeatable)")
    ap.add_argument("--runs-dir", default=None,
                    help="default runs/experiments (runs/experiments-quick with --quick)")
    ap.add_argument("--jobs", type=int, default=None, help="runs in parallel (default: cores)")
    ap.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files")
    args = ap.parse_args(argv)

    from cnnlab.experiments.executor import LocalExecutor
    from cnnlab.experiments.run import run_experiment

    names = [RECIPES[k] for k in (args.only or list(RECIPES))]
    t0 = time.perf_counter()
    paths = run_experiment(names, args.runs_dir, quick=args.quick, data_dir=args.data_dir,
                           executor=LocalExecutor(jobs=args.jobs, fresh=not args.quick))
    for path in paths:
        print(path)
        print("\n".join(headline(json.loads(Path(path).read_text()))), flush=True)
    print(f"done in {time.perf_counter() - t0:.0f} s; report: cnnlab report "
          f"{Path(paths[0]).parent.parent} --out report.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
