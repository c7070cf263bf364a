"""A lean install: the runtime dependencies are what analyze/verify/train/experiment/report
need; ray, optuna and the test tools are extras, each named by a one-line error when missing."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import waiting

ROOT = Path(__file__).resolve().parents[1]
EXTRAS_ONLY = ("ray", "optuna", "scipy", "hypothesis", "torchinfo", "pytest", "ruff",
               "import-linter", "keras", "onnx")


def _name(req: str) -> str:
    return req.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip()


def test_runtime_dependencies_leave_the_extras_out() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    assert runtime.isdisjoint(EXTRAS_ONLY), runtime
    extras = project["optional-dependencies"]
    assert {_name(r) for r in extras["search"]} == {"optuna"}
    assert {_name(r) for r in extras["ray"]} == {"ray"}
    assert {"ray", "optuna", "pytest", "hypothesis", "ruff"} <= {_name(r) for r in extras["test"]}


BLOCK = ("import sys\n"
         "for m in ('optuna', 'ray', 'scipy', 'hypothesis', 'torchinfo'):\n"
         "    sys.modules[m] = None  # as if not installed\n"
         "from cnnlab.cli.main import main\n"
         "sys.exit(main())")


def _cnnlab(*argv: str) -> tuple[int, str, str]:
    p = waiting.run([sys.executable, "-c", BLOCK, *argv])
    return p.returncode, p.stdout, p.stderr


def test_runtime_commands_work_without_the_extras() -> None:
    code, out, err = _cnnlab("analyze", "baseline", "--format", "csv")
    assert code == 0 and "conv1" in out, err
    code, out, err = _cnnlab("verify", "--only", "softmax")
    assert code == 0 and "PASS" in out, err
    code, out, err = _cnnlab("experiment", "show", "huji_q2", "--quick")
    assert code == 0 and out.startswith("job"), err


def test_a_search_without_optuna_is_one_line_naming_the_extra(tmp_path) -> None:
    code, out, err = _cnnlab("search", "huji_q3", "--quick", "--runs-dir", str(tmp_path / "r"))
    lines = [ln for ln in err.splitlines() if "error" in ln]
    assert code == 2 and len(lines) == 1, err
    assert "pip install 'cnnlab[search]'" in lines[0] and "Traceback" not in err
    assert not (tmp_path / "r").exists()
