"""Budget profiles: ``--budget cpu`` (the recipes' own budgets and seeds) and ``--budget
sheet`` (their ``[sheet]`` tables, 5 seeds unless the table says otherwise)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_executor import InlineExecutor

from cnnlab.cli import main as cli
from cnnlab.common.errors import CnnlabError
from cnnlab.experiments import recipe as ex
from cnnlab.experiments.run import run_recipe

RECIPE = '''# header
title = "t"
source = "s"
question = "1"
seeds = 3
[base]
model = "eth"
iterations = 100
eval_every = 50
lr = 1e-3
[quick]
iterations = 5
[sheet]
iterations = 2000
eval_every = 500
lr = 1e-4
[[variants]]
label = "a"
iterations = 300
[[variants]]
label = "b"
sheet = { lr = 3e-4 }
[[sweeps]]
grid = { l2 = [0.0, 1e-3] }
'''


def _recipe(tmp_path: Path, text: str = RECIPE) -> ex.Recipe:
    path = tmp_path / "r.toml"
    path.write_text(text)
    return ex.load_recipe(path)


def _cfgs(recipe: ex.Recipe, **kw) -> dict[tuple[str, int], object]:
    return {(j.group, j.seed): ex.train_config(j, "runs") for j in ex.expand(recipe, **kw)}


def test_cpu_is_the_recipe_and_sheet_its_table(tmp_path: Path) -> None:
    r = _recipe(tmp_path)
    assert r.sheet == "s" and r.sheet_budget["lr"] == 1e-4
    cpu, sheet = _cfgs(r), _cfgs(r, budget="sheet")
    assert {s for _, s in cpu} == {0, 1, 2} and {s for _, s in sheet} == {0, 1, 2, 3, 4}
    assert (cpu[("a", 0)].iterations, cpu[("b", 0)].iterations) == (300, 100)
    assert {c.iterations for c in sheet.values()} == {2000}  # [sheet] beats a variant's own
    assert (sheet[("a", 0)].lr, sheet[("b", 0)].lr) == (1e-4, 3e-4)  # its own sheet table wins
    assert sheet[("l2=0.001", 4)].l2 == 1e-3 and sheet[("l2=0.001", 4)].eval_every == 500
    assert ex.train_config(ex.expand(r, quick=True)[0], "runs").iterations == 5


def test_sheet_seeds_come_from_the_table(tmp_path: Path) -> None:
    r = _recipe(tmp_path, RECIPE.replace("lr = 1e-4\n", "lr = 1e-4\nseeds = 2\n", 1))
    assert r.seeds_for("sheet") == 2 and r.seeds_for("cpu") == 3
    assert len(ex.expand(r, budget="sheet")) == 2 * 4


@pytest.mark.parametrize("edit, message", [
    (('source = "s"\n', ''), "source"),  # with a [sheet] table the name is source = ...
    (("iterations = 2000", "iterations = 2000\ncolour = 1"), "colour"),
    (("iterations = 2000", "iterations = 2000\nseeds = 0"), "seeds"),
])
def test_sheet_table_errors_are_one_line(tmp_path: Path, edit: tuple, message: str) -> None:
    with pytest.raises(CnnlabError, match=message):
        _recipe(tmp_path, RECIPE.replace(*edit, 1))


def test_unknown_budget_and_quick_with_sheet_are_errors(tmp_path: Path) -> None:
    r = _recipe(tmp_path)
    with pytest.raises(CnnlabError, match="unknown budget"):
        ex.expand(r, budget="gpu")
    with pytest.raises(CnnlabError, match="--quick"):
        run_recipe(r, InlineExecutor(), tmp_path / "runs", quick=True, budget="sheet")
    with pytest.raises(SystemExit) as exc:  # argparse's choices: exit 2, one usage line
        cli.main(["experiment", "run", str(tmp_path / "r.toml"), "--budget", "gpu"])
    assert exc.value.code == 2


def test_experiment_json_states_the_profile_and_what_the_sheet_asked(tmp_path: Path) -> None:
    r = _recipe(tmp_path)
    doc = json.loads(run_recipe(r, InlineExecutor(), tmp_path / "runs", seeds=1,
                                budget="sheet").read_text())
    assert doc["budget"] == "sheet" and doc["seeds"] == 1
    assert doc["sheet_asks"] == {"iterations": 2000, "eval_every": 500, "lr": 1e-4, "seeds": 5,
                                 "per_group": {"b": {"lr": 3e-4}}}
    assert {j["result"]["iterations"] for j in doc["jobs"]} == {2000}
    cpu = json.loads(run_recipe(r, InlineExecutor(), tmp_path / "runs", seeds=1).read_text())
    assert cpu["budget"] == "cpu" and {j["result"]["iterations"] for j in cpu["jobs"]} == {100,
                                                                                        300}


@pytest.mark.parametrize("name", [n for n in ex.recipe_names()])
def test_every_shipped_recipe_documents_both_profiles(name: str) -> None:
    r = ex.load_recipe(name)
    assert r.seeds_for("cpu") >= 3 and r.seeds_for("sheet") >= 5, name
    assert r.sheet_budget, f"{name}: no [sheet] table"
    header = "".join(line for line in Path(r.path).read_text().splitlines(keepends=True)
                     if line.startswith("#"))
    assert "cpu" in header and "sheet" in header, f"{name}: header documents no profiles"


def test_show_expands_either_profile_with_run_ids(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["experiment", "show", "huji_q1", "--budget", "sheet", "--format", "json"]) == 0
    sheet = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(j["seed"], j["config"]["iterations"], j["config"]["lr"]) for j in sheet] == [
        (s, 20000, 1e-4) for s in range(5)]
    assert cli.main(["experiment", "show", "huji_q2", "--format", "json"]) == 0
    cpu = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(cpu) == 6 and len({j["run_id"] for j in cpu + sheet}) == 11
