"""``cnnlab report [RUNS_OR_EXPERIMENT_DIRS...] --out report.html [--pdf]``."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", default=["runs/experiments"], metavar="DIR",
                        help="experiment folders, folders holding them, or run folders "
                             "(default: runs/experiments)")
    parser.add_argument("--out", default="report.html", help="HTML file to write")
    parser.add_argument("--pdf", action="store_true",
                        help="also write a PDF next to it (Chromium, else matplotlib)")
    parser.add_argument("--title", default="cnnlab report")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnlab.common.errors import CnnlabError
    from cnnlab.experiments.report import write

    out = Path(args.out)
    if out.is_dir() or args.out.endswith(("/", "\\")):
        raise CnnlabError(f"--out {args.out}: is a folder; give a file name such as "
                          f"{out / 'report.html'}")

    for path in write(args.paths, args.out, args.pdf, args.title):
        print(path)
    return 0
