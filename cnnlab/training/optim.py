"""Optimizers, learning-rate schedules and the ETH L2 regularizer.

The schedule is a pure function of the iteration (:func:`lr_at`), set on the optimizer before
every step, so a resumed run needs no scheduler state to follow the same curve.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnlab.common.errors import CnnlabError

OPTIMIZERS = ("sgd", "momentum", "adam", "adadelta")
SCHEDULES = ("constant", "onecycle", "cosine", "step")


def make_optimizer(name: str, params: list[nn.Parameter], lr: float,
                   momentum: float = 0.9) -> torch.optim.Optimizer:
    """The named optimizer. L2 is not weight decay here: the sheets put it on the FC weights
    only, in the loss (:func:`l2_raw`)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "momentum":
        # TF's MomentumOptimizer (the ETH skeleton's era): heavy ball, not Nesterov
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    if name == "adam":
        # one fused kernel for every parameter (CPU and CUDA): the same update as the
        # per-parameter loop to float rounding, 2-3x faster (bench_fixed_schedule --profile)
        return torch.optim.Adam(params, lr=lr, fused=_fusable(params))
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr)
    raise CnnlabError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")


def _fusable(params: list[nn.Parameter]) -> bool:
    """Whether torch's fused Adam takes ``params``: floating tensors on the CPU or CUDA."""
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda")
                                for p in params)


def lr_at(schedule: str, base: float, it: int, total: int, steps_per_epoch: int,
          warmup: float = 0.25, gamma: float = 0.7) -> float:
    """Learning rate for (0-based) step ``it`` of ``total``.

    * ``onecycle`` -- linear from ``base/10`` up to ``base`` over the first ``warmup`` of the
      run, then linear down to 0 (the triangular cycle of fast-training recipes);
    * ``cosine``  -- half a cosine from ``base`` to 0;
    * ``step``    -- ``base * gamma**epoch`` (PyTorch's MNIST example: StepLR, gamma 0.7).
    """
    if schedule == "constant":
        return base
    total = max(total, 1)
    t = it / total
    if schedule == "onecycle":
        peak = max(warmup, 1e-9)
        if t < peak:
            return base * (0.1 + 0.9 * t / peak)
        return base * max(0.0, (1 - t) / max(1 - peak, 1e-9))
    if schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    if schedule == "step":
        return base * gamma ** (it // max(steps_per_epoch, 1))
    raise CnnlabError(f"unknown schedule {schedule!r}; known: {', '.join(SCHEDULES)}")


def fc_layers(model: nn.Module) -> list[nn.Linear]:
    """The fully connected layers (``nn.Linear``, also inside the builder's FlattenLinear)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def l2_raw(layers: list[nn.Linear]) -> torch.Tensor:
    """ETH Problem 4: ``sum W_ij^2 + sum b_i^2`` over the FC layers, without lambda."""
    terms = []
    for m in layers:
        terms.append(m.weight.pow(2).sum())
        if m.bias is not None:
            terms.append(m.bias.pow(2).sum())
    if not terms:
        raise CnnlabError("--l2 regularizes fully connected layers, but the model has none")
    return torch.stack(terms).sum()
