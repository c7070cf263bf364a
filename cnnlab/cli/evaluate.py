"""``cnnlab evaluate RUN [--out DIR]``: a finished run's accuracy, per-class accuracy and
confusion matrix on its evaluation set, and its figures (misclassified examples, confusion
matrix, first-layer filters) as PNG files."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a finished run's folder (runs/NAME)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="folder for the figures (default: RUN/plots)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="folder with the dataset's files (default: the run's)")
    parser.add_argument("--no-figures", action="store_true", help="print only, write no file")


def run(args: argparse.Namespace) -> int:
    from cnnlab.training.evaluation import evaluate_run, format_evaluation, write_figures

    ev = evaluate_run(args.run, args.data_dir)
    print(format_evaluation(ev))
    if not args.no_figures:
        written = write_figures(ev, args.out or Path(args.run) / "plots")
        print("\nwrote " + ", ".join(str(p) for p in written))
    return 0
