"""HUJI 1.1: the baseline's test accuracy after 20,000 iterations of batch 50 ("above 97%").

The sheet's recipe as in the TF tutorial it follows: Adam 1e-4, batch 50, no dropout,
evaluated every 500 iterations (HUJI 1.2's plot). Long on a CPU; ``--iterations`` runs a
shorter version, and the result says how far it got.

    .venv/bin/python bench/bench_baseline_20k.py [--iterations 20000] [--runs-dir runs]
"""

from __future__ import annotations

import argparse

import torch

from cnnlab.training.trainer import TrainConfig, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=20000)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--runs-dir", default="runs")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    r = train(TrainConfig(model="baseline", dataset="mnist", optimizer="adam", lr=1e-4,
                          batch_size=50, iterations=a.iterations, eval_every=a.eval_every,
                          runs_dir=a.runs_dir, out_name=f"huji-baseline-{a.iterations}",
                          overwrite=True))
    print(f"baseline after {r.iterations} iterations of batch 50: test accuracy "
          f"{r.test_acc:.2%} (train {r.train_acc:.2%}); {r.train_time:.0f} s training, "
          f"{r.wall_time:.0f} s wall, {r.images_per_s:.0f} img/s; run {r.run_dir}")
    for h in r.history:
        print(f"  iteration {h['iteration']:>6}: train {h['train_acc']:.4f} "
              f"test {h['test_acc']:.4f}")


if __name__ == "__main__":
    main()
