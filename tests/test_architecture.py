"""The design as tests: one-way dependencies, no private names across modules, the public API.

import-linter (``lint-imports`` in ``make test``) checks the layers and cycles; these tests
check what it cannot: private names crossing modules, and that the API and the CLI accept the
same model sources through the one resolver.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import cnnlab

PKG = Path(cnnlab.__file__).resolve().parent
MODULES = sorted(p for p in PKG.rglob("*.py"))


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, names) for every import in ``path``, relative ones made absolute."""
    tree = ast.parse(path.read_text())
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_no_private_name_crosses_a_module(path: Path) -> None:
    for mod, names in _imports(path):
        if not mod.startswith("cnnlab"):
            continue
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        assert not private, f"{_module_name(path)} imports private {private} from {mod}"
    # ... nor reaches one through a module it imported (``spec._value``)
    tree = ast.parse(path.read_text())
    bound = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
             and (n.level or (n.module or "").startswith("cnnlab")) for a in n.names}
    bound |= {a.asname for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
              if a.name.startswith("cnnlab") and a.asname}
    reached = [f"{n.value.id}.{n.attr}" for n in ast.walk(tree)
               if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
               and n.value.id in bound and n.attr.startswith("_") and not n.attr.startswith("__")]
    assert not reached, f"{_module_name(path)} uses private {reached}"


# ``python -m cnnlab`` (__main__) is the command line's second entry point
@pytest.mark.parametrize("path", [p for p in MODULES if "cli" not in p.relative_to(PKG).parts
                                  and p.name != "__main__.py"], ids=lambda p: _module_name(p))
def test_nothing_outside_cli_imports_cli(path: Path) -> None:
    bad = [m for m, _ in _imports(path) if m == "cnnlab.cli" or m.startswith("cnnlab.cli.")]
    assert not bad, f"{_module_name(path)} imports {bad}"


def test_every_subpackage_says_what_lives_there() -> None:
    for init in PKG.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 40, f"{init.relative_to(PKG.parent)} needs a docstring"


def test_public_api_from_the_top() -> None:
    from cnnlab.data.datasets import load
    from cnnlab.experiments.report.page import write
    from cnnlab.experiments.run import run_experiment
    from cnnlab.models.resolve import analyze
    from cnnlab.training.trainer import TrainConfig, train

    assert cnnlab.analyze is analyze and cnnlab.train is train
    assert cnnlab.TrainConfig is TrainConfig and cnnlab.load_dataset is load
    assert cnnlab.run_experiment is run_experiment and cnnlab.report is write
    assert set(cnnlab.__all__) >= {"analyze", "train", "TrainConfig", "load_dataset",
                                   "run_experiment", "report"}
    with pytest.raises(AttributeError):
        cnnlab.no_such_name  # noqa: B018


def test_import_cnnlab_stays_light() -> None:
    code = "import sys, cnnlab; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


ARCH_TOML = """name = "tiny"
input = "1x12x12"
[[layers]]
type = "conv"
kernel = [3, 3]
filters = 4
[[layers]]
type = "relu"
[[layers]]
type = "fc"
out = 10
"""


def test_api_and_cli_accept_the_same_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from cnnlab.cli.main import main

    f = tmp_path / "arch.toml"
    f.write_text(ARCH_TOML)
    a = cnnlab.analyze(str(f))
    assert a.input_shape == (1, 12, 12)
    # conv 3*3*1*4 + 4 = 40; fc (4*10*10)*10 + 10 = 4010 -- counted by hand, not by the analyzer
    assert a.total.params == 40 + 4010
    assert main(["analyze", str(f), "--format", "json"]) == 0
    assert '"params": 4050' in capsys.readouterr().out


def test_a_long_spec_string_is_no_file_name() -> None:
    spec = " ".join(["conv3x3x4(padding=same) relu"] * 20) + " fc10"
    assert len(spec) > 255
    a = cnnlab.analyze(spec, input="1x8x8")
    assert a.layer("fc1").params == 4 * 8 * 8 * 10 + 10


def test_analyze_baseline_prints_the_parameter_steps(capsys: pytest.CaptureFixture) -> None:
    from cnnlab.cli.main import main

    assert main(["analyze", "baseline"]) == 0
    out = capsys.readouterr().out
    # HUJI 1.1 by hand: 5*5*1*32+32, 5*5*32*64+64, (4*4*64)*1024+1024, 1024*10+10
    assert "5·5·1·32 = 800 weights + 32 biases = 832" in out
    assert "(64·4·4 = 1,024) inputs · 1,024 outputs = 1,048,576 weights" in out
    assert "total: 832 + 51,264 + 1,049,600 + 10,250 = 1,111,946" in out


def test_api_and_cli_accept_the_same_recipe_file(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    from cnnlab.cli.main import main

    f = tmp_path / "mine.toml"
    f.write_text('title = "t"\nsheet = "s"\nquestion = "1"\n[base]\nmodel = "baseline"\n'
                 '[measure]\nkind = "nope"\n')
    with pytest.raises(cnnlab.CnnlabError, match="kind must be one of") as api:
        cnnlab.run_experiment(str(f), runs_dir=tmp_path / "runs")
    assert main(["experiment", "run", str(f), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert str(api.value) in capsys.readouterr().err
