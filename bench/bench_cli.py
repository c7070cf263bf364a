"""CPU seconds of ``cnnlab --help``, each ``cnnlab COMMAND --help`` and a mistyped flag, each
in a fresh interpreter (user + system time of the child: the machine's load does not change
it), and whether torch was imported. Goal: < 0.5 CPU-s, no torch.

    python bench/bench_cli.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys

from cnnlab.cli.main import COMMANDS
from cnnlab.training.bf16_probe import cpu_name

PROBE = ("import sys, runpy; sys.argv = ['cnnlab', *sys.argv[1:]]\n"
         "try:\n    runpy.run_module('cnnlab', run_name='__main__')\n"
         "except SystemExit:\n    pass\n"
         "print('torch' in sys.modules, file=sys.stderr)")


def cpu_of(argv: list[str], probe: str = PROBE) -> tuple[float, bool]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return cpu, p.stderr.strip().splitlines()[-1] == "True"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cases = [["--help"]] + [[c, "--help"] for c in COMMANDS] + [["train", "--itterations", "1"]]
    worst = 0.0
    for argv in cases:
        runs = [cpu_of(argv) for _ in range(args.repeat)]
        best = min(c for c, _ in runs)
        worst = max(worst, best)
        print(f"cnnlab {' '.join(argv):<24} {best:.3f} CPU-s  torch imported: "
              f"{any(t for _, t in runs)}")
    bare = "import sys; print('torch' in sys.modules, file=sys.stderr)"
    base = min(cpu_of([], bare)[0] for _ in range(args.repeat))
    print(f"slowest {worst:.3f} CPU-s (a bare interpreter here: {base:.3f}); CPU: {cpu_name()}")


if __name__ == "__main__":
    main()
