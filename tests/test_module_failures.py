"""``--module pkg.mod:factory`` runs the user's code: every way it can fail is one line
naming the module, exit 2 (issue 24, kind 5). Each case is a temporary module on sys.path."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from cnnlab.cli.main import main

NET = "import torch.nn as nn\n"
CASES = [
    ("raise RuntimeError('no GPU here')\n", "make",
     "--module: importing '{m}' raised RuntimeError: no GPU here; fix the module"),
    ("def make(:\n", "make", "--module: importing '{m}': syntax error in"),
    ("import sys\nsys.exit(0)\n", "make",
     "--module: importing '{m}' called sys.exit(0); a module for --module must not exit"),
    ("import sys\nsys.exit('usage: x')\n", "make", "called sys.exit('usage: x')"),
    ("import no_such_dependency_xyz\n", "make",
     "--module: cannot import '{m}': No module named 'no_such_dependency_xyz'"),
    (NET + "def make(width, depth=2):\n    return nn.Linear(width, 2)\n", "make",
     "--module {m}:make: make() needs argument(s) width; point --module at a function that "
     "takes none"),
    (NET + "class Net(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n",
     "Net", "--module {m}:Net: Net() needs argument(s) n"),
    (NET + "def make():\n    raise ValueError('bad width')\n", "make",
     "--module: calling {m}:make() raised ValueError: bad width"),
    (NET + "def make():\n    raise SystemExit(3)\n", "make",
     "calling {m}:make() called sys.exit(3)"),
    ("def make():\n    return 42\n", "make", "--module {m}:make: got a int, not a torch.nn.Module"),
    (NET + "x = 1\n", "make", "--module: '{m}' has no attribute 'make'"),
]


@pytest.mark.parametrize(("source", "attr", "message"), CASES)
def test_a_failing_module_is_one_line(tmp_path: Path, monkeypatch, capsys, source: str,
                                      attr: str, message: str) -> None:
    name = f"usermod_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        code = main(["analyze", "--module", f"{name}:{attr}", "--input", "1x4x4"])
    finally:
        sys.modules.pop(name, None)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("cnnlab: error: ") and err.count("\n") == 1, err
    assert message.format(m=name) in err


@pytest.mark.parametrize("target", [":make", "mod:", "mod"])
def test_a_malformed_target_is_one_line(capsys, target: str) -> None:
    assert main(["analyze", "--module", target, "--input", "1x4x4"]) == 2
    assert "expected package.module:factory" in capsys.readouterr().err
