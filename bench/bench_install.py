"""Install time and size of cnnlab in a fresh venv: torch, then the runtime (``pip install
-e .``, what ``make demo`` installs), then the test extra (``make test``). Wall seconds per
step and the venv's size after each (``du -sk``); the load average at start.

    python3 bench/bench_install.py [--torch torch==2.13.0] [--index URL] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _size(venv: Path) -> str:
    kb = int(subprocess.run(["du", "-sk", str(venv)], capture_output=True, text=True,
                            check=True).stdout.split()[0])
    return f"{kb / 2**20:.2f} GB"


def _step(what: str, cmd: list[str], venv: Path) -> None:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    print(f"{what:<14} {time.perf_counter() - t:6.1f} s wall, venv {_size(venv)}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--torch", default="torch==2.13.0")
    ap.add_argument("--index", default="", help="extra index for torch, e.g. "
                    "https://download.pytorch.org/whl/cpu (default: pip's configuration)")
    ap.add_argument("--keep", default=None, help="build the venv here and keep it")
    args = ap.parse_args()
    tmp = Path(args.keep or tempfile.mkdtemp(prefix="cnnlab-install-"))
    venv = tmp / "venv"
    try:
        print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs, "
              f"Python {sys.version.split()[0]}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "pip"), "install", "-q"]
        index = ["--extra-index-url", args.index] if args.index else []
        _step("torch", [*pip, *index, args.torch], venv)
        _step("runtime", [*pip, "-e", str(ROOT)], venv)
        n = len(subprocess.run([str(venv / "bin" / "pip"), "list"], capture_output=True,
                               text=True).stdout.splitlines()) - 2
        print(f"runtime packages: {n}")
        _step("test extra", [*pip, "-e", f"{ROOT}[test]"], venv)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
