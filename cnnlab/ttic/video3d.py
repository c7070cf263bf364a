"""The TTIC video CNN (Problems 1-2): the sheet's 3D convolution equation, literally, and the
registered ``video3d`` spec.

Problem 2's solution, in the sheet's layout ``L[b, x, y, t, n]``::

    L_{l+1}[b, x, y, t, n_out] = sigma( K[n_out, DX, DY, DT, N_in]
                                        L_l[b, s x + DX, s y + DY, s t + DT, N_in] - B[n_out] )

with repeated capital indices summed. :func:`conv3d_literal` evaluates exactly that (an einsum
over the strided windows, no padding), as an oracle for the ``nn.Conv3d`` the IR builds: torch
holds the same tensor as ``(b, n, t, y, x)`` and the kernel as ``(n_out, n_in, dt, dy, dx)``,
and adds its bias where the sheet subtracts a threshold.

Problem 1 generalised to video: a convolution producing an ``X x Y x T`` output from ``N_in``
channels with a ``DX x DY x DT`` kernel does ``B X Y T DX DY DT N_out N_in`` multiplications
(:func:`sheet_macs`); :func:`macs_table` checks it per layer of ``video3d`` against the analyzer
and forward hooks (the ``video_macs`` measurement of the ``ttic_video`` recipe).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch


def conv3d_literal(L: torch.Tensor, K: torch.Tensor, B: torch.Tensor, stride: int = 1,
                   sigma: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Problem 2's equation: ``L`` ``(b, X, Y, T, N_in)``, ``K`` ``(N_out, DX, DY, DT, N_in)``,
    ``B`` ``(N_out,)`` -> ``(b, X', Y', T', N_out)`` with ``X' = (X - DX) // s + 1`` etc."""
    _, dx, dy, dt, _ = K.shape
    # windows[b, x, y, t, n_in, DX, DY, DT] = L[b, s x + DX, s y + DY, s t + DT, n_in]
    windows = L.unfold(1, dx, stride).unfold(2, dy, stride).unfold(3, dt, stride)
    pre = torch.einsum("bxytnijk,oijkn->bxyto", windows, K) - B
    return pre if sigma is None else sigma(pre)


def layer_to_torch(L: torch.Tensor) -> torch.Tensor:
    """The sheet's ``L[b, x, y, t, n]`` as torch's ``(b, n, t, y, x)`` (N, C, T, H, W)."""
    return L.permute(0, 4, 3, 2, 1)


def layer_from_torch(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`layer_to_torch`."""
    return x.permute(0, 4, 3, 2, 1)


def kernel_to_torch(K: torch.Tensor) -> torch.Tensor:
    """The sheet's ``K[n_out, dx, dy, dt, n_in]`` as ``Conv3d.weight[n_out, n_in, dt, dy, dx]``."""
    return K.permute(0, 4, 3, 2, 1)


def sheet_macs(batch: int, out_xyt: Sequence[int], kernel: Sequence[int], n_out: int,
               n_in: int) -> int:
    """Problem 1 with a time axis: ``B X Y T DX DY DT N_out N_in`` (``X, Y, T`` the output's)."""
    return batch * math.prod(out_xyt) * math.prod(kernel) * n_out * n_in


def video3d_spec(widths: Sequence[int] = (8, 16, 32, 64), classes: int = 10,
                 kernel: int = 3, stride: int = 2) -> str:
    """``conv3x3x3xC(stride=2) relu ... fc`` with 'same' padding, so each conv halves space
    and time (rounding up) and the stack fits short clips."""
    k = f"{kernel}x{kernel}x{kernel}"
    body = " ".join(f"conv{k}x{w}(stride={stride},padding=same) relu" for w in widths)
    return f"{body} fc{classes}"


def macs_table(frames: int = 8, size: int = 64, batch: int = 1) -> dict[str, Any]:
    """Per conv of ``video3d`` (``frames x size x size`` clips): the analyzer's MACs, Problem 1's
    formula (:func:`sheet_macs`) and the forward-hook count; plus the totals of the network."""
    from cnnlab.analysis.analyze import analyze_graph
    from cnnlab.analysis.hook_count import hook_macs
    from cnnlab.ir.shapes import window_params
    from cnnlab.ir.spec import parse
    from cnnlab.models import zoo as models

    mdef = models.get("video3d", frames=frames, size=size)
    graph, shape = parse(mdef.spec), mdef.input_shape
    a = analyze_graph(graph, shape, batch=batch)
    hooks = hook_macs(mdef.build(seed=0).eval(), torch.zeros(batch, *shape))
    shapes = {r.name: r.output_shape for r in a.layers}
    rows = []
    for r in a.layers:
        if r.kind != "conv":
            continue
        node = graph.node(r.name)
        kt, ky, kx = window_params(node, shapes[node.inputs[0]]).kernel
        n_out, t, y, x = r.output_shape
        rows.append({"layer": r.name, "output_XYT": [x, y, t], "kernel_XYT": [kx, ky, kt],
                     "n_in": shapes[node.inputs[0]][0], "n_out": n_out, "analyzer": r.macs,
                     "formula": sheet_macs(batch, (x, y, t), (kx, ky, kt), n_out,
                                           shapes[node.inputs[0]][0]),
                     # an asymmetric 'same' pad wraps the Conv3d one level deeper
                     "hooks": sum(v for k, v in hooks.items() if k.split(".")[1] == r.name)})
    return {"model": "video3d", "spec": mdef.spec, "input": list(shape), "batch": batch,
            "layers": rows, "total_macs": a.total.macs, "params": a.total.params}
