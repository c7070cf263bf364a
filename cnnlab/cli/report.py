"""``cnnlab report [RUNS_OR_EXPERIMENT_DIRS...] --out report.html [--pdf] [--sheet huji]``."""

from __future__ import annotations

import argparse

SHEETS = ("huji", "eth", "sheet3", "ttic", "all")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="DIR",
                        help="experiment folders, folders holding them, or run folders "
                             "(default: runs/experiments; none with --sheet: theory only)")
    parser.add_argument("--out", default="report.html", help="HTML file to write")
    parser.add_argument("--pdf", action="store_true",
                        help="also write a PDF next to it (Chromium, else matplotlib)")
    parser.add_argument("--title", default=None,
                        help="the document's title (default: cnnlab report, or the sheet's "
                             "name with --sheet)")
    parser.add_argument("--author", action="append", default=[], metavar="NAME",
                        help="an author named under the title (repeat for several)")
    parser.add_argument("--paper", choices=("a4", "letter"), default="a4",
                        help="the PDF's page size (default a4)")
    parser.add_argument("--sheet", choices=SHEETS, default=None,
                        help="one answer document for a sheet: its theory answers (the "
                             "analyzer's tables, verify's claims, the errata), each with the "
                             "command that reproduces it, then its experiments from DIRs")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnlab.common.errors import CnnlabError
    from cnnlab.experiments.report.page import write

    out = Path(args.out)
    if out.is_dir() or args.out.endswith(("/", "\\")):
        raise CnnlabError(f"--out {args.out}: is a folder; give a file name such as "
                          f"{out / 'report.html'}")
    theory = None
    title = args.title
    if args.sheet:
        from cnnlab.experiments.report.theory import SHEET_TITLES, answers

        theory = answers(args.sheet)
        title = title or SHEET_TITLES[args.sheet]
    paths = args.paths or ([] if args.sheet else ["runs/experiments"])
    for path in write(paths, args.out, args.pdf, title or "cnnlab report", args.author,
                      args.paper, theory, args.sheet):
        print(path)
    return 0
