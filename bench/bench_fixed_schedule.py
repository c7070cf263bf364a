"""Headline speed the way the field measures it: a fixed schedule, one test evaluation at the end.

Protocol (airbench / hlb-CIFAR10 style): each recipe trains for its fixed number of steps, is
evaluated once on the full 10,000-image test set at the end, over ``--seeds`` seeds (>= 10 for
the headline). Reported per recipe: mean and min test accuracy, training seconds per seed
(median, min-max; evaluation excluded), and whether the criterion holds (mean >= 99.0%, no seed
below 98.9%). The PyTorch MNIST example (``bench/peer_mnist.py``, its own network, Adadelta and
DataLoader, fixed ``--peer-epochs``) runs under the same protocol in the same script.

Roofline: the training FLOPs of one image (forward + backward of the conv and linear layers)
are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one real training step and
cross-checked with the analyzer's forward FLOPs x 3; the attainable peak of this CPU is measured
in the same run (a large fp32 GEMM, a bf16 GEMM where the CPU has native bf16, and the recipe's
own convolution at a large batch). The fraction is achieved FLOP/s / peak.

    .venv/bin/python bench/bench_fixed_schedule.py [--seeds 10] [--peer-seeds 3] [--threads 1]
        [--recipes fast2,fast] [--profile] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.models import zoo
from cnnlab.models.resolve import analyze
from cnnlab.training import presets
from cnnlab.training.bf16_probe import cpu_name
from cnnlab.training.trainer import TrainConfig, resolve_device, train

# fast2: the recipe before round 3 (the reference of the speed-up); fast3: round 3's;
# fast: today's FAST_RECIPE
RECIPES = {"fast2": presets.FAST2_RECIPE, "fast3": presets.FAST3_RECIPE,
           "fast": presets.FAST_RECIPE}
MEAN_MIN, SEED_MIN = 0.990, 0.989


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln for ln in f if ln.startswith("flags")), "").split()
    except OSError:
        flags = []
    native = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"{cpu_name()} ({', '.join(native) or 'no native bf16'})"


def run_recipe(recipe: dict[str, Any], seed: int, runs: str) -> tuple[float, float, int]:
    """(training seconds, final test accuracy, iterations) of one seed, evaluated once."""
    cfg = TrainConfig(**recipe, dataset="mnist", seed=seed, runs_dir=runs, out_name=f"s{seed}",
                      overwrite=True, plots=False, progress="off", tensorboard=False,
                      train_eval_size=100, eval_every=10**9, checkpoint_every=10**9)
    r = train(cfg)
    return r.train_time, r.test_acc, r.iterations


def step_flops(recipe: dict[str, Any], batch: int) -> tuple[float, float]:
    """(FlopCounterMode fwd+bwd FLOPs per image, analyzer forward FLOPs per image x 3)."""
    mdef = zoo.resolve(recipe["model"])
    model = mdef.build()
    x = torch.randn(batch, *mdef.input_shape)
    y = torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as fc:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    counted = fc.get_total_flops() / batch
    a = analyze(recipe["model"])
    return counted, 3.0 * a.total.flops


def gemm_peak(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    """FLOP/s of an n x n x n matmul in ``dtype`` (best of ``reps``)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def conv_peak(reps: int = 10) -> float:
    """FLOP/s of fast2's second convolution (5x5, 16 -> 32 channels on 14x14) at batch 512."""
    x = torch.randn(512, 16, 14, 14)
    conv = torch.nn.Conv2d(16, 32, 5, bias=False)
    with torch.no_grad():
        conv(x)
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            conv(x)
            best = min(best, time.perf_counter() - t)
    flops = 2 * 512 * 32 * 10 * 10 * 16 * 25
    return flops / best


def profile(recipe: dict[str, Any], runs: str) -> None:
    """Per-op CPU time of a 0.2-epoch run of ``recipe`` (torch.profiler), top 15 ops; data
    loading and normalisation show as one-off ``div``/``sub``/``std`` calls, not per step."""
    short = dict(recipe, epochs=0.2)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run_recipe(short, 0, runs)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def _summary(name: str, times: list[float], accs: list[float]) -> str:
    ok = statistics.mean(accs) >= MEAN_MIN and min(accs) >= SEED_MIN
    return (f"{name:<8} {len(accs):>5} {100 * statistics.mean(accs):>7.2f}% "
            f"{100 * min(accs):>7.2f}% {statistics.median(times):>9.2f} s "
            f"{min(times):>6.2f}-{max(times):.2f} s  {'yes' if ok else 'NO'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--peer-seeds", type=int, default=3)
    ap.add_argument("--peer-epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--recipes", default="fast2,fast",
                    help="comma list from: " + ", ".join(k for k, v in RECIPES.items() if v))
    ap.add_argument("--profile", action="store_true", help="print per-op time of each recipe")
    ap.add_argument("--quick", action="store_true", help="2 seeds, no peer")
    a = ap.parse_args()
    if a.quick:
        a.seeds, a.peer_seeds = 2, 0
    torch.set_num_threads(a.threads)
    names = [n for n in a.recipes.split(",") if RECIPES.get(n)]
    print(f"CPU: {cpu_model()}; threads {a.threads}; device "
          f"{resolve_device('auto')}; load average {os.getloadavg()[0]:.2f}", flush=True)
    runs = tempfile.mkdtemp(prefix="cnnlab-fixed-")
    results: dict[str, tuple[list[float], list[float], int]] = {n: ([], [], 0) for n in names}
    # interleaved (seed 0 of every recipe, then seed 1...): a change of load mid-run hits all
    # recipes alike, so the ratio of their medians stays fair
    for seed in range(a.seeds):
        for name in names:
            t, acc, it = run_recipe(RECIPES[name], seed, runs)
            print(f"  {name} seed {seed}: {t:.2f} s, test {100 * acc:.2f}%, {it} steps",
                  flush=True)
            times, accs, _ = results[name]
            results[name] = (times + [t], accs + [acc], it)
    peer_rows = []
    if a.peer_seeds:
        from peer_mnist import load_mnist, train_fixed

        ds = load_mnist()
        for seed in range(a.peer_seeds):
            t, acc = train_fixed(ds, seed, a.peer_epochs)
            print(f"  peer seed {seed}: {t:.1f} s, test {100 * acc:.2f}%", flush=True)
            peer_rows.append((t, acc))

    print("\nfixed schedule, one evaluation at the end (criterion: mean >= 99.0%, min >= 98.9%)")
    print(f"{'recipe':<8} {'seeds':>5} {'mean':>8} {'min':>8} {'median t':>11} "
          f"{'range':>13}  criterion")
    for name, (times, accs, _) in results.items():
        print(_summary(name, times, accs))
    if peer_rows:
        print(_summary(f"peer{a.peer_epochs}ep", [t for t, _ in peer_rows],
                       [c for _, c in peer_rows]))

    peaks = {"fp32 GEMM": gemm_peak(torch.float32), "fp32 conv": conv_peak()}
    if "bf16" in cpu_model() or "amx" in cpu_model():
        peaks["bf16 GEMM"] = gemm_peak(torch.bfloat16)
    print("\nroofline (FLOPs of conv+linear layers, fwd+bwd)")
    print("  attainable peak: " + ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s"
                                            for k, v in peaks.items()))
    for name, (times, _, iters) in results.items():
        rec = RECIPES[name]
        counted, from_analyzer = step_flops(rec, rec["batch_size"])
        total = counted * rec["batch_size"] * iters
        rate = total / statistics.median(times)
        best = max(peaks.values())
        print(f"  {name}: {counted / 1e6:.2f} MFLOP/image (analyzer fwd x3: "
              f"{from_analyzer / 1e6:.2f}), {total / 1e12:.3f} TFLOP per run, "
              f"{rate / 1e9:.1f} GFLOP/s = {100 * rate / best:.0f}% of the best peak")
    if len(results) >= 2:
        base, new = names[0], names[-1]
        ratio = statistics.median(results[base][0]) / statistics.median(results[new][0])
        print(f"\nspeed-up {new} vs {base}: {ratio:.2f}x (ratio of median training seconds)")
    if peer_rows and results:
        first = names[-1]
        pr = statistics.median([t for t, _ in peer_rows]) / statistics.median(results[first][0])
        print(f"{first} vs the PyTorch example ({a.peer_epochs} epoch): {pr:.1f}x faster")
    if a.profile:
        for name in names:
            print(f"\nprofile of {name} (0.2 epoch):")
            profile(RECIPES[name], runs)


if __name__ == "__main__":
    main()
