"""The train, plot and demo commands through the CLI dispatcher."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from trainutil import write_tiny

from cnnlab.cli.main import main

torch.set_num_threads(1)


def _flags(tmp_path, *extra):
    data = tmp_path / "tiny"
    if not data.exists():
        write_tiny(data)
    return ["train", "--spec", "conv3x3x4 relu maxpool2 fc10", "--dataset", "tiny",
            "--data-dir", str(data), "--runs-dir", str(tmp_path / "runs"), "--iterations", "10",
            "--eval-every", "5", "--batch-size", "20", "--lr", "0.003", "--threads", "1",
            "--no-plots", *extra]


def test_train_flags_and_resume(tmp_path, capsys):
    assert main(_flags(tmp_path, "--out-name", "a", "--keep-prob", "0.9", "--l2", "0.01")) == 2
    assert "keep_prob" in capsys.readouterr().err  # options belong to named models
    assert main(_flags(tmp_path, "--out-name", "a", "--l2", "0.01", "--optimizer",
                       "momentum")) == 0
    out = capsys.readouterr().out
    assert "runs/a: 10 iterations" in out and "tensorboard --logdir" in out
    cfg = json.loads((tmp_path / "runs" / "a" / "config.json").read_text())
    assert cfg["l2"] == 0.01 and cfg["optimizer"] == "momentum" and cfg["iterations"] == 10
    assert main(_flags(tmp_path, "--out-name", "a")) == 2
    assert "--resume" in capsys.readouterr().err
    # resume takes the saved config: no flags need repeating
    assert main(["train", "--out-name", "a", "--runs-dir", str(tmp_path / "runs"),
                 "--resume", "--no-plots"]) == 0
    assert main(_flags(tmp_path, "--out-name", "../evil")) == 2


def test_config_file(tmp_path, capsys):
    good = tmp_path / "c.toml"
    good.write_text('lr = 0.002\nbatch_size = 10\nout_name = "from-toml"\n')
    assert main(_flags(tmp_path, "--config", str(good))) == 0
    cfg = json.loads((tmp_path / "runs" / "from-toml" / "config.json").read_text())
    assert cfg["lr"] == 0.003 and cfg["batch_size"] == 20  # flags override the file
    bad = tmp_path / "bad.toml"
    bad.write_text("lr = 0.1\nlearning_rate = 0.1\n")
    assert main(_flags(tmp_path, "--config", str(bad))) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) learning_rate" in err and err.count("\n") == 1


def test_plot_command_overlays_runs(tmp_path, capsys):
    for name in ("p1", "p2"):
        assert main(_flags(tmp_path, "--out-name", name)) == 0
    runs = [str(tmp_path / "runs" / n) for n in ("p1", "p2")]
    assert main(["plot", *runs, "--out", str(tmp_path / "cmp")]) == 0
    for fig in ("accuracy", "loss", "ratio"):
        assert (tmp_path / "cmp" / f"{fig}.svg").read_text().count("<svg") == 1
    assert main(["plot", str(tmp_path)]) == 2


def test_demo_quick(tmp_path, capsys):
    root = os.environ.get("CNNLAB_DATA")
    if not root or not (Path(root) / "mnist").is_dir():
        pytest.skip("CNNLAB_DATA does not hold mnist/")
    assert main(["demo", "--quick", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "tensorboard --logdir" in out and (tmp_path / "demo" / "plots" / "accuracy.png").exists()


def test_demo_never_replaces_an_earlier_demo(tmp_path):
    from cnnlab.cli.demo import _fresh

    assert _fresh(str(tmp_path)) == "demo"
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo-2").mkdir()
    assert _fresh(str(tmp_path)) == "demo-3"


@pytest.mark.parametrize("flags, message", [
    (["--lr", "-1"], "--lr must be in (0, 1000], got -1.0"),
    (["--keep-prob", "0"], "--keep-prob must be in (0, 1]"),
    (["--l2", "-0.1"], "--l2 must be in [0, 1,000,000], got -0.1"),
    (["--model", "nope"], "unknown model 'nope'"),
])
def test_bad_flags_fail_before_the_run_folder_exists(tmp_path, capsys, flags, message):
    runs = tmp_path / "runs"
    argv = ["train", "--iterations", "1", "--runs-dir", str(runs), "--out-name", "bad", *flags]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (runs / "bad").exists()


def test_preset_is_the_base_that_config_and_flags_override(tmp_path, capsys):
    from cnnlab.training.presets import FAST_RECIPE

    conf = tmp_path / "c.toml"
    conf.write_text('warmup = 0.25\nout_name = "preset"\n')
    assert main(_flags(tmp_path, "--preset", "fast", "--config", str(conf), "--precision",
                       "fp32")) == 0
    cfg = json.loads((tmp_path / "runs" / "preset" / "config.json").read_text())
    assert cfg["schedule"] == FAST_RECIPE["schedule"] == "onecycle"  # from the preset
    assert cfg["label_smoothing"] == FAST_RECIPE["label_smoothing"]
    assert cfg["warmup"] == 0.25 and cfg["lr"] == 0.003 and cfg["precision"] == "fp32"
    with pytest.raises(SystemExit) as exc:  # argparse's choices: exit 2, one usage line
        main(_flags(tmp_path, "--preset", "fastest"))
    assert exc.value.code == 2
    assert "invalid choice: 'fastest'" in capsys.readouterr().err
