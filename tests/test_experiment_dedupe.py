"""No run trained twice: jobs of one run identity share one by-id/<hash> folder, within a call
(across recipes) and across calls; a changed result-determining key is a new run."""

from __future__ import annotations

import json
from pathlib import Path

from test_executor import InlineExecutor

from cnnlab.experiments import recipe as ex
from cnnlab.experiments.run import run_experiment, run_recipe

HUJI4 = ["huji_q4_subset", "huji_q4_size", "huji_q4_dropout"]
THE_THREE = {"huji_q4_subset/250-examples-s0", "huji_q4_size/widths-32x64x1024-s0",
             "huji_q4_dropout/keep-1.0-s0"}


def _jobs(paths: list[Path]) -> list[dict]:
    return [j for p in paths for j in json.loads(p.read_text())["jobs"]]


def test_the_three_huji4_runs_train_once_in_quick(tmp_path: Path) -> None:
    inline = InlineExecutor()
    jobs = _jobs(run_experiment(HUJI4, tmp_path, quick=True, executor=inline))
    three = [j for j in jobs if j["name"] in THE_THREE]
    assert len(three) == 3 and len({j["run_id"] for j in three}) == 1
    assert sorted(str(j["reused"]) for j in three) == ["None", "shared", "shared"]
    assert all(set(j["shared_with"]) == THE_THREE - {j["name"]} for j in three)
    assert inline.calls == len({j["run_id"] for j in jobs}) == len(jobs) - 2
    folder = tmp_path / three[0]["out_name"]
    assert folder.parent.name == "by-id" and folder.name == three[0]["run_id"]
    # the finest needs of the three: q4_subset's quick train_eval_size 500, q4_size's 2000
    assert json.loads((folder / "config.json").read_text())["train_eval_size"] == 2000
    doc = json.loads((tmp_path / "huji_q4_size" / "experiment.json").read_text())
    assert doc["reuse"]["shared_with_recipes"] == ["huji_q4_dropout", "huji_q4_subset"]

    again = InlineExecutor()
    jobs2 = _jobs(run_experiment(HUJI4, tmp_path, quick=True, executor=again))
    assert again.calls == 0 and {j["reused"] for j in jobs2} == {"earlier"}
    assert [j["result"] for j in jobs2] == [j["result"] for j in jobs]


RECIPE = '''title = "t"
source = "s"
question = "1"
seeds = 1
[base]
model = "baseline"
iterations = 100
eval_every = 25
lr = 1e-3
[[variants]]
label = "{label}"
{extra}
'''


def _run(tmp_path: Path, label: str = "a", extra: str = "", name: str = "r") -> dict:
    path = tmp_path / f"{name}.toml"
    path.write_text(RECIPE.format(label=label, extra=extra))
    inline = InlineExecutor()
    doc = json.loads(run_recipe(ex.load_recipe(path), inline, tmp_path / "runs").read_text())
    doc["calls"] = inline.calls
    return doc


def test_across_calls_equal_meaning_reuses_and_a_changed_lr_trains(tmp_path: Path) -> None:
    first = _run(tmp_path)
    assert first["calls"] == 1 and first["jobs"][0]["reused"] is None
    # another recipe, other label, keep_prob = 1.0 (no dropout) and the default widths spelt out
    same = _run(tmp_path, "b", 'keep_prob = 1.0\nmodel_opts = { widths = "32x64x1024" }', "o")
    assert same["calls"] == 0 and same["jobs"][0]["reused"] == "earlier"
    assert same["jobs"][0]["run_id"] == first["jobs"][0]["run_id"]
    new = _run(tmp_path, "a", "lr = 2e-3")
    assert new["calls"] == 1 and new["jobs"][0]["run_id"] != first["jobs"][0]["run_id"]
    assert (tmp_path / "runs" / first["jobs"][0]["out_name"] / "result.json").is_file()


def test_a_finer_measurement_need_retrains_a_coarser_run(tmp_path: Path) -> None:
    first = _run(tmp_path)
    coarser = _run(tmp_path, extra="eval_every = 50")
    assert coarser["calls"] == 0 and coarser["jobs"][0]["reused"] == "earlier"
    finer = _run(tmp_path, extra="eval_every = 10")
    assert finer["calls"] == 1 and finer["jobs"][0]["run_id"] == first["jobs"][0]["run_id"]
    saved = json.loads((tmp_path / "runs" / finer["jobs"][0]["out_name"] /
                        "config.json").read_text())
    assert saved["eval_every"] == 10


def test_the_report_states_the_profile_the_sheet_and_the_reuse(tmp_path: Path) -> None:
    from cnnlab.experiments.report.page import collect, render_html

    run_experiment(HUJI4, tmp_path, quick=True, executor=InlineExecutor())
    html = render_html(collect([tmp_path]))
    assert html.count("Budget profile: quick, 1 seed(s) per configuration.") == 3
    assert "asks for lr 0.0001, iterations 20000, batch_size 50, eval_every 500" in html
    assert "(with huji_q4_dropout, huji_q4_subset)" in html  # huji_q4_size's runs are shared
