"""The report: one self-contained HTML file, PDF fallback, input discovery."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import scipy.stats as scipy_stats
from test_executor import InlineExecutor, fake_train

from cnnlab.common.errors import CnnlabError
from cnnlab.experiments import recipe as ex
from cnnlab.experiments.report import page as report
from cnnlab.experiments.run import run_recipe
from cnnlab.training.trainer import TrainConfig

RECIPE = '''title = "Linear vs. non-linear"
sheet = "HUJI 67103 Assignment 1"
question = "2"
text = "2.2 Compare the performance of this linear network to its original counterpart."
seeds = 2
[base]
iterations = 100
eval_every = 20
[[variants]]
label = "non-linear"
[[variants]]
label = "linear"
model = "linear"
[analyze]
models = [{ model = "baseline" }]
[findings]
kind = "compare"
baseline = "non-linear"
plots = ["test_acc", "regularizer"]
'''


def make_experiment(tmp_path: Path) -> Path:
    """A finished two-variant experiment (fake trainer) under ``tmp_path/runs``."""
    recipe_file = tmp_path / "huji_q2.toml"
    recipe_file.write_text(RECIPE)
    return run_recipe(ex.load_recipe(recipe_file), InlineExecutor(), tmp_path / "runs")


def test_html_is_self_contained_and_carries_the_numbers(tmp_path: Path) -> None:
    make_experiment(tmp_path)
    out = tmp_path / "report.html"
    assert report.write([tmp_path / "runs"], out) == [out]
    text = out.read_text()
    assert "<h3>2 Linear vs. non-linear</h3>" in text
    assert "2.2 Compare the performance" in text
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", text)
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 2
    # the baseline's parameter count, step by step, from the analyzer
    assert "fc1 (fc 1024): (64·4·4 = 1,024) inputs · 1,024 outputs" in text
    assert "1,111,946 free parameters" in text
    # the table value is the mean over the two seeds of the fake trainer's final accuracy
    # ± the half-width of its 95% t-interval (scipy as the oracle), with the seed count
    doc = json.loads((tmp_path / "runs" / "huji_q2" / "experiment.json").read_text())
    accs = [j["result"]["test_acc"] for j in doc["jobs"] if j["group"] == "linear"]
    half = scipy_stats.t.ppf(0.975, 1) * scipy_stats.sem(accs)
    assert f"<tr><td>linear</td><td>2</td><td>{100 * sum(accs) / 2:.2f} ± {100 * half:.2f}%" \
        in text
    assert "<caption>results (mean ± 95% CI over seeds)</caption>" in text
    assert "± the half-width of their 95% confidence interval (Student t)" in text
    # the same seeds and data order on both sides: the difference is paired by seed
    assert "paired by seed, 2 seeds): worse by this measure.</li>" in text


def test_plain_run_folders_are_reported_too(tmp_path: Path) -> None:
    for name, model in (("a", "baseline"), ("b", "linear")):
        fake_train(TrainConfig(out_name=name, runs_dir=str(tmp_path), model=model,
                               iterations=40, eval_every=20))
    out = tmp_path / "r.html"
    report.write([tmp_path / "a", tmp_path / "b"], out)
    text = out.read_text()
    assert "Other runs" in text
    acc = json.loads((tmp_path / "b" / "result.json").read_text())["test_acc"]
    # one seed per run: said once for the section, with no verdict per difference
    assert f"b reached test acc {100 * acc:.2f}% vs a " in text
    assert text.count("One seed per configuration: no number here has a confidence "
                      "interval") == 1
    assert "train every configuration with more seeds" in text
    assert "percentage points: not distinguishable" not in text


def test_pdf_falls_back_to_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_experiment(tmp_path)
    monkeypatch.setattr(report, "chromium", lambda: None)
    written = report.write([tmp_path / "runs"], tmp_path / "r.html", pdf=True)
    pdf = written[1].read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000


def test_missing_input_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CnnlabError, match="no experiment.json or finished run"):
        report.write([tmp_path], tmp_path / "r.html")
    with pytest.raises(CnnlabError, match="no such file"):
        report.write([tmp_path / "nope"], tmp_path / "r.html")
