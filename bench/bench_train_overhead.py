"""Images/s of ``baseline`` through cnnlab's trainer vs a bare PyTorch loop, same tensors.

The bare loop is the minimum a hand-written trainer does: index-permutation batches from the
same device-resident tensors, forward, cross-entropy, backward, Adam step. The ratio shows
what cnnlab's bookkeeping (schedule, accumulators, logging, NaN checks) costs. Goal: <= 5%.

    .venv/bin/python bench/bench_train_overhead.py [--iterations 300] [--repeats 3]

``--views`` instead times what TensorBoard's graph, histograms and images add
(:mod:`cnnlab.training.tbviews`): the histograms and filters at one evaluation point against
the evaluation itself (train subset + test set, as the trainer runs it), the graph once at the
start and the confusion matrix and misclassified grid once at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
from torch.nn import functional as F

from cnnlab.data.datasets import load
from cnnlab.models import zoo as models
from cnnlab.training.trainer import TrainConfig, train


def bare(x, y, iterations, batch, seed) -> float:
    net = models.get("baseline").build((1, 28, 28), seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(seed)
    perm, pos = torch.randperm(len(x), generator=g), 0
    t = time.perf_counter()
    for _ in range(iterations):
        if pos + batch > len(x):
            perm, pos = torch.randperm(len(x), generator=g), 0
        idx = perm[pos:pos + batch]
        pos += batch
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return iterations * batch / (time.perf_counter() - t)


def cnnlab_ips(iterations, batch, seed, runs) -> float:
    r = train(TrainConfig(model="baseline", dataset="mnist", batch_size=batch, lr=1e-4,
                          iterations=iterations, eval_every=10 ** 9, log_every=50,
                          checkpoint_every=10 ** 9, runs_dir=runs, out_name=f"o{seed}",
                          overwrite=True, seed=seed, plots=False, progress="off",
                          train_eval_size=100, normalize=False))
    return r.images_per_s


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def views_cost(ds, repeats: int, batch: int) -> None:
    """Seconds of each TensorBoard view on ``baseline`` against one evaluation."""
    from torch.utils.tensorboard import SummaryWriter

    from cnnlab.training.engine import evaluate
    from cnnlab.training.tbviews import log_eval_views, log_final_views, log_graph

    net = models.get("baseline").build((1, 28, 28), 0)
    x, y = ds.x_train[:batch], ds.y_train[:batch]
    F.cross_entropy(net(x), y).backward()  # gradients as after a step
    cpu = torch.device("cpu")
    writer = SummaryWriter(tempfile.mkdtemp(prefix="cnnlab-views-"))
    step = iter(range(10 ** 6))
    ev = _best(lambda: (evaluate(net, ds.x_train[:10000], ds.y_train[:10000], ds, 2000, cpu),
                        evaluate(net, ds.x_test, ds.y_test, ds, 2000, cpu)), repeats)
    hist = _best(lambda: log_eval_views(writer, net, next(step), (1, 28, 28)), repeats)
    graph = _best(lambda: log_graph(writer, net, x[:1]), repeats)
    final = _best(lambda: log_final_views(writer, net, ds, next(step), 2000), repeats)
    writer.close()
    print(f"baseline, {torch.get_num_threads()} threads, best of {repeats}: evaluation "
          f"{ev:.2f} s; histograms + filters {1000 * hist:.0f} ms per evaluation "
          f"({100 * hist / ev:.1f}% of it); graph {1000 * graph:.0f} ms once; confusion "
          f"matrix + misclassified {1000 * final:.0f} ms once")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--views", action="store_true",
                    help="time the TensorBoard views instead (docs/training.md)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ds = load("mnist")
    if a.views:
        views_cost(ds, a.repeats, a.batch_size)
        return
    x, y = ds.x_train, ds.y_train
    runs = tempfile.mkdtemp(prefix="cnnlab-bench-")
    bare_r, ours = [], []
    for rep in range(a.repeats):  # interleaved so background load hits both alike
        bare_r.append(bare(x, y, a.iterations, a.batch_size, rep))
        ours.append(cnnlab_ips(a.iterations, a.batch_size, rep, runs))
        print(f"repeat {rep}: bare {bare_r[-1]:.0f} img/s, cnnlab {ours[-1]:.0f} img/s",
              flush=True)
    b, c = statistics.median(bare_r), statistics.median(ours)
    print(f"baseline, batch {a.batch_size}, {a.iterations} iterations, {a.threads} threads: "
          f"bare {b:.0f} img/s, cnnlab {c:.0f} img/s (medians of {a.repeats}); "
          f"overhead {100 * (b / c - 1):+.1f}%")


if __name__ == "__main__":
    main()
