"""Every number has a finite domain, checked in one place, before any work (issue 24, kinds 3
and 6): config fields, ``--augment``, ``--input``, spec digits, recipe counts, analyzer work."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
import tracemalloc
import typing
from pathlib import Path

import pytest

from cnnlab.cli.main import main
from cnnlab.common.config import RANGE, from_dict
from cnnlab.common.errors import CnnlabError
from cnnlab.data.augment import Augment
from cnnlab.experiments.recipe import MAX_RUNS, RECIPE_DIR, expand, load_recipe
from cnnlab.training.trainer import TrainConfig

NUMERIC = (int, float, int | None, float | None)


@pytest.mark.parametrize("cls", [TrainConfig, Augment])
def test_every_numeric_field_declares_its_domain(cls: type) -> None:
    hints = typing.get_type_hints(cls)
    numeric = [f.name for f in dataclasses.fields(cls) if hints[f.name] in NUMERIC
               and f.name != "fill"]  # fill is set by the trainer, never by the user
    assert numeric
    missing = [n for n in numeric if RANGE not in dataclasses.fields(cls)[
        [f.name for f in dataclasses.fields(cls)].index(n)].metadata]
    assert missing == []


NUMERIC_FIELDS = [f.name for f in dataclasses.fields(TrainConfig) if RANGE in f.metadata]


@pytest.mark.parametrize("name", NUMERIC_FIELDS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -(10**400), 10**400, 1e301])
def test_config_numbers_outside_their_domain_are_one_error(name: str, bad: float) -> None:
    with pytest.raises(CnnlabError) as e:
        from_dict(TrainConfig, {name: bad}, where="flags")
    message = str(e.value)
    assert message.startswith(f"--{name.replace('_', '-')} ") and "\n" not in message


@pytest.mark.parametrize("name", NUMERIC_FIELDS)
def test_the_domains_own_ends_are_accepted(name: str) -> None:
    field = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    lo, hi, lo_open, hi_open = field.metadata[RANGE]
    is_int = typing.get_type_hints(TrainConfig)[name] in (int, int | None)
    for v, is_open in ((lo, lo_open), (hi, hi_open)):
        v = int(v) if is_int else float(v)
        if is_open:
            with pytest.raises(CnnlabError):
                from_dict(TrainConfig, {name: v})
        else:
            assert getattr(from_dict(TrainConfig, {name: v}), name) == v


@pytest.mark.parametrize(("flags", "message"), [
    (["--augment", "shift=99999"], "--augment: shift must be in [0, 65,536], got 99999.0"),
    (["--augment", "shift=28"], "--augment: shift=28 moves the whole 28x28 image out of view; "
                                "use shift < 28 (a few pixels is usual)"),
    (["--augment", "shift=inf"], "--augment: shift must be in [0, 65,536], got inf"),
    (["--augment", "shift=2.5"], "--augment: shift is whole pixels, got '2.5'; use shift=2"),
    (["--augment", "noise=nan"], "--augment: noise must be in [0, 1,000], got nan"),
    (["--augment", "rotate=inf"], "--augment: rotate must be in [0, 180], got inf"),
    (["--augment", "rotate=-1"], "--augment: rotate must be in [0, 180], got -1.0"),
    (["--lr", "-1e-3"], "--lr must be in (0, 1000], got -0.001"),
    (["--seed", "-1"], "--seed must be in [0, 2^62], got -1"),
    (["--threads", "-3"], "--threads must be in [1, 4,096], got -3"),
])
def test_train_numbers_fail_before_the_run_folder(tmp_path: Path, capsys, flags: list[str],
                                                  message: str, monkeypatch) -> None:
    monkeypatch.setenv("CNNLAB_DATA", os.environ.get("CNNLAB_DATA", ""))
    runs = tmp_path / "runs"
    argv = ["train", "--iterations", "1", "--runs-dir", str(runs), "--out-name", "x", *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"cnnlab: error: {message}\n"
    assert not runs.exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["analyze", "conv3x3x8", "--input", "-1x28x28"],
     "--input '-1x28x28': every size must be >= 1, got -1"),
    (["analyze", "conv3x3x8", "--input", "1x-28x28"],
     "--input '1x-28x28': every size must be >= 1, got -28"),
    (["analyze", "conv3x3x8", "--input", "1x" + "9" * 5000],
     "--input '1x" + "9" * 5000 + "': too large"),
    (["analyze", "fc10*²", "--input", "1x28x28"],
     "spec at column 5 ('*'): '*' must be followed by a repeat count >= 1"),
    (["analyze", "conv3x3x٣", "--input", "1x28x28"], "spec at column 1 ('conv3x3x'): "),
    (["analyze", "fc" + "9" * 5000, "--input", "1x28x28"], "is too large"),
    (["analyze", "fc10*" + "9" * 5000, "--input", "1x28x28"], "makes more than"),
    (["analyze", "basline", "--input", "1x28x28"], "unknown model 'basline'"),
])
def test_analyze_numbers_are_one_error(capsys, argv: list[str], message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: error: ") and err.count("\n") == 1
    assert message in err


def test_a_dash_value_after_a_flag_that_takes_none_is_still_refused(capsys) -> None:
    # only an option that takes a value swallows the next '-...' word
    with pytest.raises(SystemExit) as e:
        main(["analyze", "conv3x3x8", "--compare", "-1x28x28"])
    assert e.value.code == 2


# ------------------------------------------------------------------ bounded work


def _recipe(tmp_path: Path, old: str, new: str) -> Path:
    text = (RECIPE_DIR / "huji_q4_subset.toml").read_text()
    assert old in text
    path = tmp_path / "big.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(("old", "new", "message"), [
    ("seeds = 3", "seeds = 1000000000000", "key 'seeds' must be in [1, 10,000], got "
                                           "1000000000000"),
    ("seeds = 5", "seeds = 1000000000000", "[sheet]: key 'seeds' must be in [1, 10,000]"),
    ("seeds = 3", "seeds = 0", "key 'seeds' must be in [1, 10,000], got 0"),
])
def test_absurd_recipe_seeds_are_refused_at_load(tmp_path: Path, old: str, new: str,
                                                 message: str) -> None:
    with pytest.raises(CnnlabError, match=re.escape(message)):
        load_recipe(_recipe(tmp_path, old, new))


def test_a_huge_sweep_is_refused_before_any_run_is_built(tmp_path: Path) -> None:
    grid = ", ".join(f"k{i} = [{', '.join(str(v) for v in range(10))}]" for i in range(8))
    recipe = load_recipe(RECIPE_DIR / "huji_q4_subset.toml")
    recipe.sweeps = [{"label": "big", "grid": dict(
        (f"model_opts.k{i}", list(range(10))) for i in range(8))}]
    assert grid  # 10^8 points
    tracemalloc.start()
    try:
        with pytest.raises(CnnlabError) as e:
            expand(recipe, seeds=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"100,000,002 runs, over the limit of {MAX_RUNS:,}" in str(e.value)
    assert peak < 10 * 2**20


def test_cli_seeds_are_bounded(capsys) -> None:
    assert main(["experiment", "run", "huji_q4_subset", "--quick", "--seeds",
                 str(10**12)]) == 2
    assert "--seeds must be in [1, 10,000], got 1000000000000" in capsys.readouterr().err


def _peak(spec: str, shape: tuple[int, ...]) -> int:
    from cnnlab.models.resolve import analyze

    tracemalloc.start()
    try:
        analyze(spec, shape)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_analyzer_memory_does_not_grow_with_the_layer_count() -> None:
    few = _peak("conv3x3x8(padding=same)*2", (1, 32768, 32768))
    many = _peak("conv3x3x8(padding=same)*24", (1, 32768, 32768))
    assert many < 1.5 * few, (few, many)


def test_analyzer_work_over_the_bound_is_refused_before_work(capsys) -> None:
    t0 = time.process_time()
    argv = ["analyze", "conv3x3x8(padding=same)*200", "--input", "1x1048576x1048576"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the analysis would visit 421,527,552 unit positions (200 layers" in err
    assert "over the limit of 268,435,456" in err and err.count("\n") == 1
    assert time.process_time() - t0 < 30  # refused from the shapes, not after the work
