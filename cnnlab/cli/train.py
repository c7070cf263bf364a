"""``cnnlab train``: one flag per :class:`~cnnlab.training.trainer.TrainConfig` field, or
``--config``.

Precedence: defaults < ``--preset NAME`` (:data:`cnnlab.training.presets.PRESETS`) <
``--config FILE.toml`` (unknown keys are errors) < flags. With
``--resume --out-name NAME`` the run's saved ``config.json`` is the base, so the flags need
not be repeated.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from cnnlab.common.config import add_arguments, from_args, from_dict
from cnnlab.common.files import load_mapping, read_json


def register(parser: argparse.ArgumentParser) -> None:
    from cnnlab.training.presets import PRESETS
    from cnnlab.training.settings import TrainConfig

    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="start from a measured recipe (fast: the headline speed recipe, "
                             "docs/training.md); --config and flags override it")
    parser.add_argument("--config", metavar="FILE.toml", default=None,
                        help="read settings from a TOML (or JSON) file; flags override it")
    add_arguments(parser, TrainConfig)


def load_config_file(path: str) -> dict:
    """A TOML/JSON settings file; a ``[train]`` table, if present, holds the settings."""
    data = load_mapping(path, "--config")
    return data.get("train", data) if isinstance(data.get("train"), dict) else data


def config_from_args(args: argparse.Namespace):
    from cnnlab.training.presets import PRESETS
    from cnnlab.training.rundir import run_path
    from cnnlab.training.settings import TrainConfig

    base = None
    preset = dict(PRESETS[args.preset]) if getattr(args, "preset", None) else {}
    given = {k for k, v in vars(args).items() if v is not None}
    if args.config:
        base = from_dict(TrainConfig, _overlay(preset, load_config_file(args.config)),
                         where=args.config)
    elif preset:
        base = from_dict(TrainConfig, preset, where=f"--preset {args.preset}")
    elif getattr(args, "resume", False) and getattr(args, "out_name", None):
        saved = run_path(getattr(args, "runs_dir", "runs"), args.out_name) / "config.json"
        if saved.is_file():
            base = from_dict(TrainConfig, read_json(saved), where=str(saved))
    if base is not None and given & _LENGTH:  # a length given by flag replaces the base's
        base = dataclasses.replace(base, **{k: None for k in _LENGTH - given})
    return from_args(TrainConfig, args, base)


_LENGTH = {"iterations", "epochs"}  # one run length: a later layer's replaces an earlier one's


def _overlay(lower: dict, upper: dict) -> dict:
    """``upper`` over ``lower``; a run length in ``upper`` drops the other one from ``lower``."""
    out = dict(lower)
    if _LENGTH & upper.keys():
        for k in _LENGTH:
            out.pop(k, None)
    out.update(upper)
    return out


def run(args: argparse.Namespace) -> int:
    from cnnlab.training.trainer import train

    cfg = config_from_args(args)
    result = train(cfg)
    target = ""
    if result.time_to_target is not None:
        target = (f", reached {cfg.target_acc:.2%} at iteration {result.iteration_to_target} "
                  f"after {result.time_to_target:.1f} s of training")
    held = "validation" if cfg.validation else "test"  # what the evaluated examples are
    print(f"{result.run_dir}: {result.iterations} iterations, {held} accuracy "
          f"{result.test_acc:.2%} (train {result.train_acc:.2%}), {result.wall_time:.1f} s"
          f"{target}")
    print(f"  tensorboard --logdir {Path(result.run_dir).parent}   plots: "
          f"{Path(result.run_dir) / 'plots'}")
    return 0
