"""``cnnlab verify``: check the sheets' claims numerically and print PASS/FAIL per claim.

    cnnlab verify                      # table: claim, source, measured, tolerance, status
    cnnlab verify --format json        # [{"claim", "source", "measured", "tolerance", "status"}]
    cnnlab verify --only softmax relu  # claims whose name or text contains a word
    cnnlab verify --list

Exit status 0 when every selected claim passes, 1 when any fails.
"""

from __future__ import annotations

import argparse
import json
import textwrap

from cnnlab.common.errors import CnnlabError


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--only", nargs="+", metavar="WORD",
                   help="run only claims whose name or text contains one of these words")
    p.add_argument("--list", action="store_true", help="list the claims without running them")


def _fmt(v: float | str) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def table(rows: list[dict[str, str]], widths: dict[str, int]) -> str:
    """Fixed-width table; long cells wrap inside their column."""
    cols = list(widths)
    lines = ["  ".join(c.ljust(widths[c]) for c in cols),
             "  ".join("-" * widths[c] for c in cols)]
    for r in rows:
        cells = {c: textwrap.wrap(r[c], widths[c]) or [""] for c in cols}
        for i in range(max(len(v) for v in cells.values())):
            lines.append("  ".join((cells[c][i] if i < len(cells[c]) else "").ljust(widths[c])
                                   for c in cols).rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from cnnlab.ref import verify

    if args.list:
        for c in verify.CLAIMS:
            print(f"{c.name:28s} {c.source:40s} {c.text}")
        return 0
    results = verify.run_claims(args.only)
    if not results:
        raise CnnlabError(f"--only {' '.join(args.only)}: no claim matches; see "
                          "'cnnlab verify --list'")
    if args.format == "json":
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        rows = [{"claim": r.claim, "source": r.source, "measured": _fmt(r.measured),
                 "tolerance": r.tolerance, "status": r.status} for r in results]
        print(table(rows, {"claim": 52, "source": 24, "measured": 22, "tolerance": 22,
                           "status": 6}))
        failed = sum(r.status == "FAIL" for r in results)
        print(f"\n{len(results) - failed}/{len(results)} claims pass")
    return 1 if any(r.status == "FAIL" for r in results) else 0
