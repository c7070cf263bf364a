"""Fast NumPy conv2d forward+backward vs torch's CPU conv on the same data.

Shapes: batch 64, 32 -> 64 channels, 5x5 kernel, 14x14 input, stride 1, valid padding,
float32. Prints the best-of-R wall time of each and the ratio numpy/torch.

    .venv/bin/python bench/bench_ref_conv.py [--repeat 10] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.ref.conv import conv_backward, conv_forward


def best_of(fn, repeat: int) -> float:
    fn()  # warm-up: first-call allocations, thread pools
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 32, 14, 14), dtype=np.float32)
    w = (rng.standard_normal((64, 32, 5, 5), dtype=np.float32) * 0.05).astype(np.float32)
    b = rng.standard_normal(64, dtype=np.float32)
    dout = rng.standard_normal((64, 64, 10, 10), dtype=np.float32)

    def numpy_step() -> None:
        out, cache = conv_forward(x, w, b)
        conv_backward(dout, cache)

    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    bt = torch.from_numpy(b).requires_grad_()
    dt = torch.from_numpy(dout)

    def torch_step() -> None:
        out = F.conv2d(xt, wt, bt)
        gx, gw, gb = torch.autograd.grad(out, (xt, wt, bt), dt)

    # numpy first: torch's OpenMP workers spin for a while after each call and would steal
    # the cores OpenBLAS needs (on a 2-core machine that alone doubles the numpy time)
    t_np = best_of(numpy_step, args.repeat)
    t_torch = best_of(torch_step, args.repeat)

    out, cache = conv_forward(x, w, b)
    dx, dw, db = conv_backward(dout, cache)
    ot = F.conv2d(xt, wt, bt)
    gx, gw, gb = torch.autograd.grad(ot, (xt, wt, bt), dt)
    err = max(float(np.abs(out - ot.detach().numpy()).max() / np.abs(out).max()),
              float(np.abs(dx - gx.numpy()).max() / np.abs(dx).max()),
              float(np.abs(dw - gw.numpy()).max() / np.abs(dw).max()))

    print("shapes: x (64, 32, 14, 14), w (64, 32, 5, 5), out (64, 64, 10, 10), float32")
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"max relative difference numpy vs torch: {err:.2e}")
    print(f"numpy conv_forward + conv_backward: {t_np * 1e3:8.2f} ms")
    print(f"torch F.conv2d forward + backward:  {t_torch * 1e3:8.2f} ms")
    print(f"ratio numpy / torch: {t_np / t_torch:.2f}x")


if __name__ == "__main__":
    main()
