"""Malformed recipes are one-line errors naming the file (never a Python exception)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnlab.common.errors import CnnlabError
from cnnlab.experiments.recipe import RECIPE_DIR, expand, load_recipe, train_config

BASE = (RECIPE_DIR / "huji_q4_subset.toml").read_text()


@pytest.mark.parametrize(("old", "new", "message"), [
    ('kind = "compare"', 'kind = ["compare"]', "findings.kind must be a string"),
    ("seeds = 3", 'seeds = "many"', "seeds must be an integer"),
    ("seeds = 3", "seeds = 0", "key 'seeds' must be in [1, 10,000], got 0"),
    ('label = "full set"', "label = 7", "label must be a string"),
    ('plots = ["train_acc+test_acc", "ratio"]', "plots = 3", "findings.plots must be"),
])
def test_wrong_type_names_the_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in BASE
    path = tmp_path / "bad.toml"
    path.write_text(BASE.replace(old, new, 1))
    with pytest.raises(CnnlabError, match=re.escape(message)) as e:
        load_recipe(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


VALUES = ['"x"', "0", "-1", "1e40", "[1, 2]", "[]", "{}", "{ a = 1 }", "true", '["a", 3]']


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**32 - 1))
def test_mutated_recipes_load_or_fail_in_one_line(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    lines = BASE.splitlines()
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        m = re.match(r"(\s*[\w\".-]+\s*=\s*)(.*)", lines[i])
        if m:
            lines[i] = m.group(1) + rng.choice(VALUES)
    path = tmp_path / "fuzz.toml"
    path.write_text("\n".join(lines) + "\n")
    try:
        recipe = load_recipe(path)
    except CnnlabError as e:
        assert "\n" not in str(e)
        return
    for job in expand(recipe, quick=True):
        train_config(job, tmp_path / "runs")


def test_cli_bad_recipe_is_the_only_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``experiment run`` checks every recipe before it prints the run's header: a bad one
    gives exactly one stderr line (exit 2) and creates no runs folder."""
    from cnnlab.cli import main as cli

    path = tmp_path / "bad.toml"
    path.write_text(BASE.replace('kind = "compare"', 'kind = ["compare"]', 1))
    runs = tmp_path / "runs"
    assert cli.main(["experiment", "run", str(path), "--quick", "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "findings.kind must be a string" in err[0], err
    assert not runs.exists()
