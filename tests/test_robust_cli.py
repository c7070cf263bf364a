"""Bad command lines and config files: exit 2, one line naming the input, no traceback, and
no file created, changed or deleted (issue 11). Plus the strict config layer, fuzzed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trainutil import write_tiny

from cnnlab.cli.main import main
from cnnlab.common.config import from_dict
from cnnlab.common.errors import CnnlabError
from cnnlab.training.trainer import TrainConfig, check_config


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its SHA-256 (and every folder)."""
    out = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = (
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder, a finished-looking run, a run without config.json, a foreign folder,
    and config files good and bad."""
    root = tmp_path_factory.mktemp("world")
    write_tiny(root / "tiny")
    runs = root / "runs"
    (runs / "done").mkdir(parents=True)
    (runs / "done" / "config.json").write_text("{}")
    (runs / "done" / "env.json").write_text("{}")
    (runs / "noconfig" / "checkpoints").mkdir(parents=True)
    (runs / "noconfig" / "env.json").write_text("{}")
    (runs / "foreign").mkdir()
    (runs / "foreign" / "thesis.tex").write_text("years of work")
    (runs / "afile").write_text("not a folder")
    cfg = root / "cfg"
    cfg.mkdir()
    files = {
        "lr_str.toml": 'lr = "1e-3"\n', "epochs_list.toml": "epochs = [1, 2]\n",
        "bn_str.toml": 'batch_norm = "no"\n', "unknown.toml": "learning_rate = 0.1\n",
        "bad.toml": "lr = = 1\n", "bad.json": "{", "empty.json": "", "list.json": "[1, 2]",
        "train_bad.toml": "[train]\nbatch_size = true\n", "seeds.toml": 'seed = "x"\n',
        "int_float.toml": "iterations = 2.5\n", "nan.toml": "lr = nan\n",
        "big.toml": "lr = 1e40\n", "threads.json": '{"label_smoothing": 2}',
        "deep.json": "[" * 100000 + "]" * 100000, "opt.toml": 'optimizer = "adamw"\n',
    }
    for name, text in files.items():
        (cfg / name).write_text(text)
    (cfg / "latin1.toml").write_bytes(b"lr = 0.1 # caf\xe9\n")
    (cfg / "folder.toml").mkdir()
    return root


def base(world: Path, *extra: str, name: str = "new") -> list[str]:
    return ["train", "--dataset", "tiny", "--data-dir", str(world / "tiny"), "--runs-dir",
            str(world / "runs"), "--out-name", name, "--iterations", "2", "--progress", "off",
            "--no-plots", "--no-tensorboard", "--threads", "1", *extra]


FLAG_CASES = [
    ["--lr", "abc"], ["--lr", "nan"], ["--lr", "inf"], ["--lr", "-1"], ["--lr", "0"],
    ["--lr", "1e40"], ["--threads", "-1"], ["--threads", "0"], ["--threads", "abc"],
    ["--label-smoothing", "2"], ["--label-smoothing", "-0.1"], ["--label-smoothing", "1"],
    ["--iterations", "0"], ["--iterations", "-5"], ["--iterations", "8.5"],
    ["--iterations", "abc"], ["--iterations", "10000000000"], ["--epochs", "0"],
    ["--epochs", "-1"], ["--epochs", "abc"], ["--epochs", "1"],  # with --iterations: both
    ["--batch-size", "0"], ["--batch-size", "-1"], ["--momentum", "1"], ["--momentum", "-0.5"],
    ["--warmup", "2"], ["--keep-prob", "0"], ["--keep-prob", "1.5"], ["--l2", "-1"],
    ["--l2", "nan"], ["--validation", "200"], ["--validation", "100000"],
    ["--validation", "-1"], ["--train-size", "0"], ["--train-size", "100000"], ["--seed", "-1"],
    ["--seed", "1e3"], ["--optimizer", "foo"], ["--schedule", "foo"], ["--device", "tpu"],
    ["--precision", "fp16", "--device", "cpu"], ["--precision", "int8"], ["--model", "nosuch"],
    ["--spec", "dropout(p=abc)"], ["--spec", "conv3x3x8*99999999"],
    ["--spec", "conv3x3x8(padding=-1)"], ["--spec", "bn(eps=abc)"], ["--spec", "fc10*0"],
    ["--spec", "res{" * 60 + "fc10" + "}" * 60], ["--spec", "fc7"],
    ["--model-opts", "foo"], ["--augment", "foo=1"], ["--augment", "shift=abc"],
    ["--augment-copies", "0", "--augment", "shift=1", "--augment-mode", "upfront"],
    ["--target-acc", "150"], ["--target-acc", "-1"], ["--checkpoint-every", "0"],
    ["--eval-every", "0"], ["--log-every", "0"], ["--train-eval-size", "0"],
    ["--eval-batch-size", "0"], ["--data-dir", "/no/such/folder"], ["--dataset", "nosuch"],
    ["--step-gamma", "0"], ["--no-such-flag"], ["--compile", "yes"],
]
NAME_CASES = ["../escape", "/abs/path", "", " ", "a/../../b", "~user", ".", "a\\b", "a\x00b",
              "done", "foreign", "afile"]
CONFIG_CASES = ["lr_str.toml", "epochs_list.toml", "bn_str.toml", "unknown.toml", "bad.toml",
                "bad.json", "empty.json", "list.json", "train_bad.toml", "seeds.toml",
                "int_float.toml", "nan.toml", "big.toml", "threads.json", "deep.json",
                "opt.toml", "latin1.toml", "folder.toml", "missing.toml"]


def _cases(world: Path) -> list[list[str]]:
    cases = [base(world, *flags) for flags in FLAG_CASES]
    cases += [base(world, name=n) for n in NAME_CASES]
    cases += [base(world, "--config", str(world / "cfg" / c)) for c in CONFIG_CASES]
    cases += [base(world, "--resume", name=n) for n in ("nosuch", "noconfig", "foreign")]
    cases += [base(world, "--overwrite", name=n) for n in ("foreign", "afile")]
    cases += [base(world, "--resume", "--overwrite", name="done")]
    cases += [["analyze", s, "--input", "1x28x28"] for s in (
        "dropout(p=abc)", "bn(eps=abc)", "conv3x3x8(stride=0,padding=same)",
        "conv3x3x8(padding=-1)", "conv3x3x8(bias=maybe)", "conv3x3x8(padding=99999999)",
        "conv3x3x8*99999999", "relu*30000", "res{" * 500 + "relu" + "}" * 500, "")]
    cases += [["report", str(world / "nothing")], ["report", str(world / "runs"), "--out",
                                                   str(world)]]
    return cases


N_CASES = len(FLAG_CASES) + len(NAME_CASES) + len(CONFIG_CASES) + 3 + 2 + 1 + 10 + 2


@pytest.mark.parametrize("i", range(N_CASES))
def test_bad_command_line(world: Path, i: int, capsys: pytest.CaptureFixture[str]) -> None:
    argv = _cases(world)[i]
    before = snapshot(world)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own usage errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, (argv[-3:], err)
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith(("cnnlab: error:", "usage:", "cnnlab train: error:",
                                           "cnnlab analyze: error:")) or "error:" in lines[-1]
    assert len([ln for ln in lines if "error" in ln]) == 1, err
    assert snapshot(world) == before, "a bad command line changed files"


def test_every_case_counted(world: Path) -> None:
    assert len(_cases(world)) == N_CASES >= 100


# ----------------------------------------------------------------------- the config layer

@pytest.mark.parametrize(("data", "words"), [
    ({"lr": "1e-3"}, "'lr'"), ({"epochs": [1, 2]}, "'epochs'"),
    ({"batch_norm": "no"}, "true or false"), ({"batch_norm": 1}, "true or false"),
    ({"batch_size": True}, "an integer"), ({"batch_size": 8.0}, "an integer"),
    ({"batch_size": "8"}, "an integer"), ({"optimizer": "foo"}, "not one of"),
    ({"lr": math.nan}, "finite"), ({"lr": math.inf}, "finite"), ({"out_name": 3}, "a string"),
    ({"seed": None}, "'seed'"), ({"model": "a\x00b"}, "NUL"), ({"nope": 1}, "unknown key"),
])
def test_from_dict_is_strict(data: dict, words: str) -> None:
    with pytest.raises(CnnlabError) as exc:
        from_dict(TrainConfig, data, where="x.toml")
    assert "x.toml" in str(exc.value) and words in str(exc.value)


def test_from_dict_keeps_good_values() -> None:
    cfg = from_dict(TrainConfig, {"lr": 1, "iterations": None, "batch_norm": True,
                                  "optimizer": "sgd", "epochs": 2})
    assert (cfg.lr, type(cfg.lr), cfg.iterations, cfg.batch_norm, cfg.optimizer,
            cfg.epochs) == (1.0, float, None, True, "sgd", 2.0)


JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**20, 10**20)
                    | st.floats() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c,
                                                                        max_size=3),
                    max_leaves=6)
FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS + ["bogus"]), JSON, max_size=6))
def test_fuzz_config_only_cnnlab_errors(data: dict) -> None:
    """Any JSON-like mapping: a CnnlabError, or a config whose every field has its type."""
    try:
        cfg = check_config(from_dict(TrainConfig, data))
    except CnnlabError:
        return
    hints = typing.get_type_hints(TrainConfig)
    for f in FIELDS:
        v = getattr(cfg, f)
        tp = hints[f]
        allowed = tuple(a for a in typing.get_args(tp) if isinstance(a, type)) or (
            (type(typing.get_args(tp)[0]),) if typing.get_origin(tp) is typing.Literal else (tp,))
        if typing.get_origin(tp) is typing.Literal:
            assert v in typing.get_args(tp)
        elif v is not None:
            assert isinstance(v, allowed) and not (isinstance(v, bool) and bool not in allowed)
    json.dumps(dataclasses.asdict(cfg))
