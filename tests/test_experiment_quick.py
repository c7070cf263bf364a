"""CI smoke test: `cnnlab experiment run all --quick` on real MNIST, then `cnnlab report`.

Every recipe must run end to end (trainer, executor, searches) and appear in the report with
its findings and plots. Needs $CNNLAB_DATA; takes a few minutes on two cores (marked slow).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_experiment_repro import mnist_or_skip

from cnnlab.cli import main as cli
from cnnlab.experiments import recipe as ex


@pytest.mark.slow
def test_quick_run_all_then_report(tmp_path: Path) -> None:
    mnist_or_skip()
    runs = tmp_path / "runs"
    assert cli.main(["experiment", "run", "all", "--quick", "--jobs", "2",
                     "--runs-dir", str(runs)]) == 0
    recipes = ex.all_recipes()
    for r in recipes:
        doc = json.loads((runs / r.name / "experiment.json").read_text())
        assert doc["quick"] is True
        done = [j for j in doc["jobs"] if "result" in j]
        done += [t for s in doc["searches"] for t in s["trace"]]
        assert done, r.name
        assert all(Path(j["run_dir"], "result.json").is_file() for j in done)
    out = tmp_path / "report.html"
    assert cli.main(["report", str(runs), "--out", str(out)]) == 0
    html = out.read_text()
    for r in recipes:
        assert f"{r.question} {r.title}".replace("'", "&#x27;") in html, r.name
    sections = html.split("<section")[1:]
    assert len(sections) == len(recipes)
    assert all("<li>" in s for s in sections)  # findings sentences in every question
    assert len(re.findall(r"data:image/png;base64,", html)) >= len(recipes)
    # the baseline's evaluate figures (huji_q1's [findings] evaluate), not a "skipped" line
    for what in ("confusion matrix", "misclassified examples", "first-layer filters"):
        assert f"baseline seed 0: {what}" in html, what
    assert "evaluation of baseline" not in html
