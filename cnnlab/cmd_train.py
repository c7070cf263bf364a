"""``cnnlab train``: one flag per :class:`~cnnlab.train.TrainConfig` field, or ``--config``.

Precedence: defaults < ``--config FILE.toml`` (unknown keys are errors) < flags. With
``--resume --out-name NAME`` the run's saved ``config.json`` is the base, so the flags need
not be repeated.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .config import add_arguments, from_args, from_dict
from .errors import CnnlabError


def register(parser: argparse.ArgumentParser) -> None:
    from .train import TrainConfig

    parser.add_argument("--config", metavar="FILE.toml", default=None,
                        help="read settings from a TOML (or JSON) file; flags override it")
    add_arguments(parser, TrainConfig)


def load_config_file(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise CnnlabError(f"--config {path}: no such file")
    text = p.read_text()
    if p.suffix == ".json":
        return json.loads(text)
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CnnlabError(f"--config {path}: {e}") from None
    return data.get("train", data) if isinstance(data.get("train"), dict) else data


def config_from_args(args: argparse.Namespace):
    from .rundir import run_path
    from .train import TrainConfig

    base = None
    if args.config:
        base = from_dict(TrainConfig, load_config_file(args.config), where=args.config)
    elif getattr(args, "resume", False) and getattr(args, "out_name", None):
        saved = run_path(getattr(args, "runs_dir", "runs"), args.out_name) / "config.json"
        if saved.is_file():
            base = from_dict(TrainConfig, json.loads(saved.read_text()), where=str(saved))
    return from_args(TrainConfig, args, base)


def run(args: argparse.Namespace) -> int:
    from .train import train

    cfg = config_from_args(args)
    result = train(cfg)
    target = ""
    if result.time_to_target is not None:
        target = (f", reached {cfg.target_acc:.2%} at iteration {result.iteration_to_target} "
                  f"after {result.time_to_target:.1f} s of training")
    print(f"{result.run_dir}: {result.iterations} iterations, test accuracy "
          f"{result.test_acc:.2%} (train {result.train_acc:.2%}), {result.wall_time:.1f} s"
          f"{target}")
    print(f"  tensorboard --logdir {Path(result.run_dir).parent}   plots: "
          f"{Path(result.run_dir) / 'plots'}")
    return 0
