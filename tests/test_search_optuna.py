"""HUJI 3's Optuna search: spaces, parameter counts, honest selection, resume, the frontier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_executor import InlineExecutor

from cnnlab.common.errors import CnnlabError
from cnnlab.experiments import recipe as ex
from cnnlab.experiments.report import findings, frontier
from cnnlab.experiments.run import run_recipe
from cnnlab.experiments.search.optuna_search import OptunaSearch
from cnnlab.experiments.search.space import check_space, param_count, suggest
from cnnlab.models import zoo

HEAD = 'title = "t"\nsheet = "s"\nquestion = "3"\nseeds = 2\n'
# test_executor.fake_accuracy: 0.80 + 0.04 * filters, so 95% needs filters >= 4
SEARCH = """
[base]
iterations = 100
eval_every = 10
[[searches]]
label = "shallow"
param = "model"
values = ["shallow"]
target = 0.95
set = { model = "shallow" }
trials = 10
batch = 3
validation = 1000
space = { filters = [1, 6], kernel = [3, 7], pool = [1, 4], pool_type = ["max", "avg"] }
enqueue = [{ filters = 4, kernel = 3, pool = 4, pool_type = "max" }]
[findings]
kind = "search"
"""


def _recipe(tmp_path: Path, text: str = SEARCH) -> ex.Recipe:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "r.toml"
    path.write_text(HEAD + text)
    return ex.load_recipe(path)


def _numel(model: str, **opts) -> int:
    net = zoo.resolve(model, **opts).build((1, 28, 28), seed=0)
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(("model", "opts"), [
    ("shallow", {}),
    ("shallow", {"filters": 3, "kernel": 7, "stride": 2, "padding": "same", "pool": 3,
                 "pool_type": "avg", "act": "tanh"}),
    ("shallow", {"filters": 2, "kernel": 4, "stride": 3, "pool": 1}),
    ("baseline", {"widths": (3, 6, 8), "kernels": (3, 3), "pools": (3, 3)}),
    ("baseline", {"widths": (2, 5, 7), "kernels": (7, 4), "pools": (2, 1), "padding": "same",
                  "pool_type": "avg", "act": "elu"}),
])
def test_param_count_is_the_built_networks_numel(model: str, opts: dict) -> None:
    assert param_count(model, opts) == _numel(model, **opts)


def test_defaults_keep_the_sheets_specs_and_bad_options_fail() -> None:
    assert zoo.resolve("baseline").spec == ("conv5x5x32 relu maxpool2 conv5x5x64 relu maxpool2 "
                                            "fc1024 relu fc10")
    assert zoo.resolve("shallow").spec == "conv5x5x8 relu maxpool2 fc10"
    assert param_count("shallow", {"kernel": 9, "stride": 3, "pool": 9}) is None  # 7x7 < 9
    with pytest.raises(CnnlabError, match="pool_type"):
        zoo.resolve("shallow", pool_type="min")
    with pytest.raises(CnnlabError, match="act must be"):
        zoo.resolve("baseline", act="swish")


def test_suggest_maps_trial_values_to_config_keys_and_model_options() -> None:
    from optuna.trial import FixedTrial

    space = {"lr": [0.001, 0.1], "widths": [[1, 4], [2, 8], [4, 16]], "pool_type": ["max", "avg"],
             "kernel": {"choices": [3, 5]}}
    got = suggest(FixedTrial({"lr": 0.01, "widths.0": 2, "widths.1": 3, "widths.2": 9,
                              "pool_type": "avg", "kernel": 5}), space)
    assert got == {"lr": 0.01, "model_opts": {"widths": [2, 3, 9], "pool_type": "avg",
                                              "kernel": 5}}


@pytest.mark.parametrize("space", [{}, {"k": [5, 3]}, {"k": []}, {"w": [[1, 2], [4, 1]]},
                                   {"k": 3}])
def test_bad_spaces_are_one_line_errors(space: dict) -> None:
    with pytest.raises(CnnlabError, match="search x"):
        check_space(space, "search x")


def test_pareto_front_keeps_only_undominated_trials() -> None:
    trials = [{"number": i, "param_count": p, "mean_val_acc": a}
              for i, (p, a) in enumerate([(100, 0.9), (200, 0.85), (300, 0.95), (300, 0.96),
                                          (50, 0.8), (400, 0.96), (500, 0.97)])]
    assert [t["number"] for t in frontier.pareto(trials)] == [4, 0, 3, 6]


def test_search_chooses_on_validation_retrains_on_new_seeds_and_resumes(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path)
    executor = InlineExecutor()
    path = run_recipe(recipe, executor, tmp_path / "runs")
    doc = json.loads(path.read_text())
    (s,) = doc["searches"]
    done = [t for t in s["trials"] if t["state"] == "complete"]
    assert len(done) == 10 and s["seeds"] == [0, 1] and s["final_seeds"] == [100, 101, 102]
    # every count is the analyzer's and equals the built network's
    for t in done:
        assert t["param_count"] == _numel("shallow", **t["overlay"]["model_opts"])
        enough = t["overlay"]["model_opts"]["filters"] >= 4
        assert t["feasible"] == (enough and t["seeds"] == [0, 1])
        if not enough:  # 92% or less on the first seed: not worth a second one
            assert t["seeds"] == [0]
    # screening never drops a point that could have won: the winner is the smallest of all
    # points able to reach the target, whether or not they got their second seed
    able = [t["param_count"] for t in done if t["overlay"]["model_opts"]["filters"] >= 4]
    assert s["winner"]["param_count"] == min(able)
    # probes saw validation only; the winner's runs are new seeds on the full training set
    runs = tmp_path / "runs"
    for rec in s["trace"]:
        cfg = json.loads((runs / rec["out_name"] / "config.json").read_text())
        assert cfg["validation"] == (1000 if rec["kind"] == "search" else 0)
        assert cfg["target_acc"] is None
    finals = [r for r in s["trace"] if r["kind"] == "final"]
    assert sorted(r["seed"] for r in finals) == [100, 101, 102]
    assert executor.calls == len({r["out_name"] for r in s["trace"]})  # one run per folder
    # a second session reads everything back and asks no new trial
    again = InlineExecutor()
    doc2 = json.loads(run_recipe(recipe, again, tmp_path / "runs").read_text())
    assert again.calls == 0 and doc2["searches"][0]["winner"] == s["winner"]


def test_an_interrupted_trial_is_asked_again_and_its_runs_are_read_back(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, SEARCH.replace("trials = 10", "trials = 3"))
    runs = tmp_path / "runs"
    first = OptunaSearch(recipe, recipe.searches[0], runs)
    jobs = first.jobs()  # asked, trained, then the session dies before telling the study
    InlineExecutor().map([ex.train_config(j, runs) for j in jobs])
    executor = InlineExecutor()
    doc = json.loads(run_recipe(recipe, executor, runs).read_text())
    (s,) = doc["searches"]
    assert [t["state"] for t in s["trials"]] == ["complete"] * 3
    # the first seeds were read back: only second seeds and the winner's new seeds train
    second = {r["out_name"] for r in s["trace"] if r["kind"] == "search" and r["seed"] == 1}
    assert executor.calls == len(second) + 3


def test_findings_and_frontier_figure(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path)
    path = run_recipe(recipe, InlineExecutor(), tmp_path / "runs")
    doc = json.loads(path.read_text())
    doc["_path"] = str(path)
    f = findings.analyze(doc)
    w = doc["searches"][0]["winner"]
    assert f"{w['param_count']:,} parameters (counted by the analyzer)" in f.sentences[1]
    assert "new seeds 100, 101, 102" in f.sentences[2]
    (title, table), = f.tables
    assert len(table["rows"]) == 10 and title.startswith("shallow: every probe")
    assert f.params[0]["total"] == w["param_count"]
    assert [g.label for g in f.groups] == ["shallow winner"]
    assert (tmp_path / "runs" / "r" / "frontier.png").is_file()  # written by the search
    fig = frontier.figure(doc, findings.root_of(doc))
    assert fig is not None
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and len(ax.collections[0].get_offsets()) == 10
    from cnnlab.experiments.report import page as report

    plots = report.section(doc)["plots"]
    assert plots[0][0] == "accuracy vs parameters: every probe, Pareto fronts"


def test_cli_search_needs_a_recipe_with_searches(capsys: pytest.CaptureFixture) -> None:
    from cnnlab.cli.main import main

    assert main(["search", "huji_q1"]) == 2
    assert "has no [[searches]]" in capsys.readouterr().err


def test_a_resumed_study_draws_new_points(tmp_path: Path) -> None:
    """Raising ``trials`` continues the study; the sampler does not replay its first draws."""
    text = SEARCH.replace("pool_type = [\"max\", \"avg\"] }",
                          "pool_type = [\"max\", \"avg\"], lr = [0.001, 0.01] }")
    runs = tmp_path / "runs"
    run_recipe(_recipe(tmp_path, text.replace("trials = 10", "trials = 4")), InlineExecutor(),
               runs)
    doc = json.loads(run_recipe(_recipe(tmp_path, text.replace("trials = 10", "trials = 8")),
                                InlineExecutor(), runs).read_text())
    points = [json.dumps(t["overlay"], sort_keys=True) for t in doc["searches"][0]["trials"]]
    assert len(points) == 8 and len(set(points)) == 8
