"""Run the three TTIC studies (video 3D CNN, bottleneck MLP with gamma, pyramid CNN) and
write ``results.json`` plus figures.

    python bench/ttic_experiments.py --quick            # smoke run, a few minutes on 1 core
    python bench/ttic_experiments.py --only pyramid     # one study, full settings

Numbers in docs/ttic.md come from this script; its output folder says which mode ran.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny runs of the same code paths")
    ap.add_argument("--only", choices=("video", "bottleneck", "pyramid"), action="append",
                    help="run only these studies (repeatable)")
    ap.add_argument("--out", default=None, help="output folder (default runs/ttic[-quick])")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files")
    ap.add_argument("--raw-pixels", action="store_true",
                    help="pyramid study: train without input standardization")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from cnnlab.data import datasets as data
    from cnnlab.ttic.plots import plot_bottleneck, plot_clips, plot_pyramid
    from cnnlab.ttic.studies import bottleneck_study, finite, pyramid_study, video_study

    out = Path(args.out or ("runs/ttic-quick" if args.quick else "runs/ttic"))
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    studies = {"video": video_study, "bottleneck": bottleneck_study, "pyramid": pyramid_study}
    for name in args.only or list(studies):
        t = time.perf_counter()
        extra = {"normalize": False} if args.raw_pixels and name == "pyramid" else {}
        res = studies[name](out / name, quick=args.quick, threads=args.threads,
                            data_dir=args.data_dir, **extra)
        res["wall_s"] = time.perf_counter() - t
        res["quick"] = args.quick
        res["command"] = "python bench/ttic_experiments.py " + " ".join(argv or sys.argv[1:])
        results[name] = finite(res)
        results_path.write_text(json.dumps(results, indent=1))
        if name == "bottleneck":
            plot_bottleneck(res, out / "plots")
        elif name == "pyramid":
            plot_pyramid(res, out / "plots")
        else:
            plot_clips(data.load("moving-mnist", args.data_dir).x_test, out / "plots")
        print(f"{name}: done in {res['wall_s']:.0f} s -> {results_path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
