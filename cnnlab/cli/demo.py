"""``cnnlab demo``: the README's main job in one command.

Analyze the HUJI baseline (parameters, shapes, MACs), train the fastest recipe found for
MNIST (docs/training.md) to 99% test accuracy, write TensorBoard logs and plots, and say
where they are. ``--quick`` trains a few dozen steps only (for tests and smoke checks).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="train briefly (a smoke test)")
    parser.add_argument("--runs-dir", default="runs", help="folder for the run (default runs)")
    parser.add_argument("--out-name", default=None,
                        help="run name (default: demo, or demo-2, demo-3... if that exists)")
    parser.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files")
    parser.add_argument("--seed", type=int, default=0)


def _fresh(runs_dir: str) -> str:
    """``demo``, or the first ``demo-N`` not taken: a second demo never replaces the first."""
    name, n = "demo", 1
    while (Path(runs_dir) / name).exists():
        n += 1
        name = f"demo-{n}"
    return name


def run(args: argparse.Namespace) -> int:
    from cnnlab.models.resolve import analyze
    from cnnlab.training.presets import BASELINE_RECIPE
    from cnnlab.training.trainer import TrainConfig, train

    print("== HUJI 1.1 baseline: layers, parameters, MACs ==")
    print(analyze("baseline"))
    print()
    recipe = dict(BASELINE_RECIPE)
    if args.quick:
        recipe.update(epochs=None, iterations=40)
    cfg = TrainConfig(**recipe, dataset="mnist", data_dir=args.data_dir,
                      runs_dir=args.runs_dir, out_name=args.out_name or _fresh(args.runs_dir),
                      seed=args.seed, target_acc=None if args.quick else 0.99,
                      eval_every=20 if args.quick else 75, train_eval_size=2000)
    print(f"== training {cfg.model} on MNIST (adam, one-cycle lr {cfg.lr}, batch "
          f"{cfg.batch_size}, target 99% test accuracy) ==")
    r = train(cfg)
    reached = (f"reached 99% after {r.time_to_target:.1f} s of training (iteration "
               f"{r.iteration_to_target})" if r.time_to_target is not None else
               f"did not reach 99% in {r.iterations} iterations")
    print(f"test accuracy {r.test_acc:.2%}, train accuracy {r.train_acc:.2%}: {reached}; "
          f"{r.param_count:,} parameters, {r.wall_time:.1f} s in all")
    run_dir = Path(r.run_dir)
    print(f"plots:        {run_dir / 'plots'} (accuracy, loss, ratio; .png and .svg)")
    print(f"tensorboard:  tensorboard --logdir {run_dir.parent}   (curves, graph, histograms, "
          "filters, confusion matrix)")
    print(f"evaluate:     cnnlab evaluate {run_dir}   (per-class accuracy, misclassified digits)")
    print(f"metrics:      {run_dir / 'metrics.jsonl'}   weights: {run_dir / 'model.safetensors'}")
    return 0
