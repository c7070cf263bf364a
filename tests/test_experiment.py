"""Recipes load and expand into valid configs; findings follow the measured numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_executor import InlineExecutor, fake_accuracy

from cnnlab.common.errors import CnnlabError
from cnnlab.experiments import recipe as ex
from cnnlab.experiments.report import findings
from cnnlab.experiments.run import run_recipe
from cnnlab.training.trainer import TrainConfig

# the sheets' practical questions and the recipe that answers each
SHEETS = {"huji_q1", "huji_q2", "huji_q3", "huji_q4_subset", "huji_q4_size", "huji_q4_dropout",
          "huji_q5", "eth_dropout", "eth_l2", "eth_conv2", "eth_filters", "eth_lr", "eth_bn",
          "sheet3_precision", "sheet3_augment"}


def test_every_question_has_a_recipe_and_all_expand_to_valid_configs() -> None:
    assert SHEETS <= set(ex.recipe_names())
    for recipe in ex.all_recipes():
        for quick in (False, True):
            jobs = ex.expand(recipe, quick=quick)
            assert jobs or recipe.searches, recipe.name
            for job in jobs:
                cfg = ex.train_config(job, "runs")
                assert isinstance(cfg, TrainConfig)
                assert cfg.out_name.startswith(recipe.name + "/")
            assert len({j.out_name for j in jobs}) == len(jobs), recipe.name


def _write(tmp_path: Path, text: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "r.toml"
    path.write_text(text)
    return path


HEAD = 'title = "t"\nsheet = "s"\nquestion = "1"\nseeds = 2\n'


def test_overrides_model_opts_sweeps_and_quick(tmp_path: Path) -> None:
    r = ex.load_recipe(_write(tmp_path, HEAD + """
[base]
model = "eth"
iterations = 100
model_opts = { fc = 64, filters1 = 8 }
[quick]
iterations = 5
[[variants]]
label = "a"
model_opts = { conv2 = true }
quick = { iterations = 7 }
[[sweeps]]
grid = { "model_opts.k1" = [3, 5, 7], keep_prob = [0.5, 1.0] }
set = { lr = 0.01 }
"""))
    full = ex.expand(r)
    assert len(full) == 2 * (1 + 3 * 2)
    a0 = ex.train_config(full[0], tmp_path)
    assert (a0.model_opts, a0.iterations, a0.seed) == ("fc=64,filters1=8,conv2=true", 100, 0)
    sw = [j for j in full if j.kind == "sweep"]
    assert sw[0].group == "k1=3, keep_prob=0.5"
    cfg = ex.train_config(sw[0], tmp_path)
    assert (cfg.model_opts, cfg.keep_prob, cfg.lr) == ("fc=64,filters1=8,k1=3", 0.5, 0.01)
    quick = ex.expand(r, quick=True)
    assert {j.seed for j in quick} == {0}
    assert sorted({j.values["model_opts.k1"] for j in quick if j.kind == "sweep"}) == [3, 7]
    assert ex.train_config(quick[0], tmp_path).iterations == 7
    assert ex.train_config(quick[1], tmp_path).iterations == 5


@pytest.mark.parametrize("body, message", [
    ("[base]\nmodle = 'x'\n[[variants]]\nlabel = 'a'\n", "modle"),
    ("colour = 1\n", "colour"),
    ("[[variants]]\nmodel = 'x'\n", "label"),
    ("[[sweeps]]\nlabel = 'x'\n", "grid"),
])
def test_recipe_errors_are_clear(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(CnnlabError, match=message):
        ex.load_recipe(_write(tmp_path, HEAD + body))


def _run(tmp_path: Path, text: str) -> dict:
    recipe = ex.load_recipe(_write(tmp_path, HEAD + text))
    path = run_recipe(recipe, InlineExecutor(), tmp_path / "runs")
    doc = json.loads(path.read_text())
    doc["_path"] = str(path)
    return doc


def test_compare_findings_follow_the_numbers(tmp_path: Path) -> None:
    doc = _run(tmp_path, """
[base]
iterations = 100
eval_every = 25
[[variants]]
label = "nonlin"
[[variants]]
label = "lin"
model = "linear"
[findings]
kind = "compare"
baseline = "nonlin"
threshold = 0.5
""")
    f = findings.analyze(doc)
    lin = [fake_accuracy(TrainConfig(model="linear", seed=s)) for s in (0, 1)]
    non = [fake_accuracy(TrainConfig(seed=s)) for s in (0, 1)]
    text = " ".join(f.sentences)
    assert f"lin reached test acc {100 * sum(lin) / 2:.2f} ± " in text
    assert f"vs nonlin {100 * sum(non) / 2:.2f} ± " in text
    diff = 100 * (sum(lin) - sum(non)) / 2
    assert f"a difference of {diff:+.2f} percentage points" in text
    assert "worse by this measure" in text
    assert "first reached 50% test accuracy at iteration 75" in text


def test_sweep_and_search_findings(tmp_path: Path) -> None:
    doc = _run(tmp_path, """
[base]
iterations = 100
eval_every = 10
[[sweeps]]
label = "keep {keep_prob}"
grid = { keep_prob = [0.25, 0.5, 1.0] }
[findings]
kind = "sweep"
param = "keep probability"
describe = ["regularizer"]
""")
    f = findings.analyze(doc)
    assert "The best keep probability by test acc was keep 0.25" in f.sentences[0]
    assert "the worst, keep 1.0" in f.sentences[0]
    # search: fake accuracy is 0.80 + 0.04 * filters, so 0.95 needs filters >= 4
    doc = _run(tmp_path / "s", """
[base]
iterations = 100
eval_every = 10
[[searches]]
label = "shallow"
param = "model_opts.filters"
values = [1, 2, 3, 4, 5, 6, 8]
target = 0.95
set = { model = "shallow" }
[findings]
kind = "search"
""")
    assert doc["searches"][0]["found"] == 4
    f = findings.analyze(doc)
    assert f.sentences[0].startswith("The smallest shallow network reaching 95% was filters=4 "
                                     "with 5,874 parameters")
    assert "filters=3 (1,000 parameters), did not reach" in f.sentences[1]
    assert f.params[0]["steps"][0] == "conv1 (conv 5x5x4): 5·5·1·4 = 100 weights + 4 biases = 104"


def test_clashing_labels_and_findings_typos_are_errors(tmp_path: Path) -> None:
    with pytest.raises(CnnlabError, match="same run folder"):
        ex.load_recipe(_write(tmp_path, HEAD + "[[variants]]\nlabel = 'keep 0.5'\n"
                              "[[variants]]\nlabel = 'keep-0.5'\n"))
    with pytest.raises(CnnlabError, match="metrc"):
        ex.load_recipe(_write(tmp_path, HEAD + "[[variants]]\nlabel = 'a'\n"
                              "[findings]\nmetrc = 'test_acc'\n"))
