"""Experiment output a person can read: runs named by recipe/variant/seed beside their id,
"validation" for held-out training data, ``experiment show`` as a table of what differs,
and failures that share a cause reported once."""

from __future__ import annotations

import json

import pytest
from test_executor import fake_train

from cnnlab.cli.main import main
from cnnlab.common.errors import CnnlabError
from cnnlab.experiments.executor import LocalExecutor
from cnnlab.experiments.recipe import load_recipe
from cnnlab.experiments.run import run_jobs
from cnnlab.experiments.runlines import (
    FailureLog,
    failure_summary,
    held_out,
    job_label,
    run_label,
)
from cnnlab.training.trainer import RunResult, TrainConfig


@pytest.mark.parametrize("name, want", [
    ("huji_q2/linear-s0", "huji_q2/linear seed 0"), ("eth/drop-0.5-s12", "eth/drop-0.5 seed 12"),
    ("plain", "plain")])
def test_job_label(name, want) -> None:
    assert job_label(name) == want


def test_run_label_held_out_and_failures() -> None:
    cfg = TrainConfig(out_name="by-id/abc", validation=1000)
    names = {"by-id/abc": ["q/linear-s0", "q/linear-again-s0"]}
    assert run_label(names, cfg) == "q/linear seed 0, q/linear-again seed 0 (by-id/abc)"
    assert run_label({}, cfg) == "by-id/abc"
    assert held_out(cfg) == "validation" and held_out(TrainConfig()) == "test"
    errors = [("a", "no MNIST here"), ("b", "no MNIST here"), ("c", "bad lr")]
    assert failure_summary(errors) == "a, b: no MNIST here; c: bad lr"
    assert failure_summary(errors, causes=1) == "a, b: no MNIST here; and 1 more cause(s)"
    log = FailureLog()
    assert log.line("a", "no MNIST here") == "  a: FAILED (no MNIST here); the other runs go on"
    assert log.line("b", "no MNIST here") == "  b: FAILED (the same cause as a)"


def no_data_train(cfg: TrainConfig) -> RunResult:
    raise CnnlabError("dataset mnist: no IDX files in any of the searched folders " + "x" * 300)


def test_runs_failing_for_one_cause_are_one_error_and_lines_name_the_jobs(tmp_path) -> None:
    lines: list[str] = []
    recipe = load_recipe("huji_q2")
    from cnnlab.experiments.recipe import expand

    jobs = expand(recipe, quick=True)
    ex = LocalExecutor(jobs=1, cores=1, train_fn=no_data_train, log=lines.append, batch=False,
                       fresh=False)
    with pytest.raises(CnnlabError) as exc:
        run_jobs(jobs, ex, tmp_path)
    msg = str(exc.value)
    assert msg.count("no IDX files") == 1, msg
    assert msg.startswith("2 of 2 training tasks failed (huji_q2/")
    assert "huji_q2/linear seed 0 (by-id/" in msg and "huji_q2/non-linear-baseline seed 0" in msg
    assert sum("no IDX files" in line for line in lines) == 1
    assert any("FAILED (the same cause as huji_q2/" in line for line in lines)


def test_a_run_line_names_recipe_variant_seed_and_says_validation(tmp_path) -> None:
    from cnnlab.experiments.recipe import expand

    lines: list[str] = []
    jobs = expand(load_recipe("huji_q2"), quick=True)
    ex = LocalExecutor(jobs=1, cores=1, train_fn=fake_train, log=lines.append, batch=False,
                       fresh=False)
    records = run_jobs(jobs, ex, tmp_path)
    done = [line for line in lines if "s training" in line]
    assert len(done) == 2
    assert any(line.startswith("  huji_q2/linear seed 0 (by-id/") and
               "): validation " in line for line in done), done
    assert all(" test " not in line for line in done)
    assert [r["evaluated_on"] for r in records] == ["validation", "validation"]


def test_experiment_show_is_a_table_of_what_differs(capsys) -> None:
    assert main(["experiment", "show", "huji_q2", "--quick"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["job", "run", "id", "model"]
    rows = {line.split("  ")[0].strip(): line.split()[-1] for line in out[2:4]}
    assert rows == {"non-linear (baseline) seed 0": "baseline", "linear seed 0": "linear"}
    assert out[-1].startswith("2 jobs; the same in all: ") and "validation=1000" in out[-1]


def test_experiment_show_json_is_the_raw_form(capsys) -> None:
    assert main(["experiment", "show", "huji_q2", "--quick", "--format", "json"]) == 0
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["config"]["model"] for d in docs] == ["baseline", "linear"]
    assert all(len(d["run_id"]) == 16 and d["seed"] == 0 for d in docs)
