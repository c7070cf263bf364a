"""``cnnlab plot RUN... [--out DIR]``: overlay the accuracy, loss and ratio curves of runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders (runs/NAME)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output folder (default: the single run's plots/, or plots/)")
    parser.add_argument("--labels", default=None,
                        help="comma-separated legend labels, one per run")


def run(args: argparse.Namespace) -> int:
    from cnnlab.common.errors import CnnlabError
    from cnnlab.training.plots import plot_runs

    labels = args.labels.split(",") if args.labels else None
    if labels and len(labels) != len(args.runs):
        raise CnnlabError(f"--labels has {len(labels)} entries for {len(args.runs)} runs")
    out = args.out or (str(Path(args.runs[0]) / "plots") if len(args.runs) == 1 else "plots")
    written = plot_runs(args.runs, out, labels)
    print(f"wrote {len(written)} files to {out}: "
          + ", ".join(sorted({p.stem for p in written})) + " (.png, .svg)")
    return 0
