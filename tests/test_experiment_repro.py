"""Every experiment run is reproducible from its saved config.json: re-running it with
``cnnlab train --config`` gives the same metrics on CPU. Needs real MNIST ($CNNLAB_DATA).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cnnlab.cli import main as cli
from cnnlab.common.errors import CnnlabError
from cnnlab.data.datasets import locate
from cnnlab.experiments import recipe as ex
from cnnlab.experiments.executor import LocalExecutor
from cnnlab.experiments.run import run_recipe

RECIPE = '''title = "repro"
sheet = "test"
question = "0"
[base]
model = "shallow"
dataset = "mnist"
lr = 3e-3
iterations = 40
eval_every = 20
validation = 1000
train_eval_size = 500
keep_prob = 0.5
plots = false
tensorboard = false
[[variants]]
label = "dropout"
'''


def mnist_or_skip() -> None:
    if not os.environ.get("CNNLAB_DATA"):
        pytest.skip("CNNLAB_DATA is not set (the real MNIST files are needed)")
    try:
        locate("mnist", download=False)
    except CnnlabError as e:
        pytest.skip(f"MNIST not found under $CNNLAB_DATA: {e}")


def _evals(run: Path) -> list[dict]:
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "train_time"} for r in recs
            if r["kind"] == "eval"]


def test_saved_config_reproduces_the_metrics(tmp_path: Path) -> None:
    mnist_or_skip()
    (tmp_path / "repro.toml").write_text(RECIPE)
    recipe = ex.load_recipe(tmp_path / "repro.toml")
    path = run_recipe(recipe, LocalExecutor(jobs=1, log=lambda m: None), tmp_path / "runs")
    job = json.loads(path.read_text())["jobs"][0]
    first = tmp_path / "runs" / job["out_name"]  # the content-addressed by-id/<hash> folder
    assert job["name"] == "repro/dropout-s0" and first.parent.name == "by-id"
    config = first / "config.json"
    assert cli.main(["train", "--config", str(config), "--runs-dir", str(tmp_path / "again"),
                     "--out-name", "copy"]) == 0
    a, b = _evals(first), _evals(tmp_path / "again" / "copy")
    assert len(a) == 2 and a == b
