"""The optimizers of :mod:`cnnlab.training.optim` on stacked parameters, one model per row.

Parameters of K models are ``(K, *shape)`` tensors; each row has its own learning rate (and
momentum). The updates are torch.optim's single-tensor formulas (``torch.optim.SGD``, heavy-ball
momentum, ``Adam`` and ``Adadelta`` with their defaults), applied to the whole stack where the
hyper-parameter is shared and row by row where it differs, so every row follows the arithmetic
``torch.optim`` applies to that model alone. :meth:`StackedOptimizer.load_into` writes row k's
state into a real ``torch.optim`` optimizer, which is what the checkpoints of
:mod:`cnnlab.training.checkpoint` save (a batched run resumes with ``train()``).
"""

from __future__ import annotations

import torch

from cnnlab.common.errors import CnnlabError

BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults (make_optimizer uses them)
RHO, ADADELTA_EPS = 0.9, 1e-6  # torch.optim.Adadelta's defaults


class StackedOptimizer:
    """One optimizer for K models of one architecture.

    ``params``: name -> ``(K, *shape)`` leaf tensors; ``momentum``: ``(K,)`` (``momentum`` only).
    """

    def __init__(self, name: str, params: dict[str, torch.Tensor], momentum: list[float]):
        if name not in ("sgd", "momentum", "adam", "adadelta"):
            raise CnnlabError(f"batched training: unknown optimizer {name!r}")
        self.name, self.params = name, params
        self.k = len(momentum)
        self.steps = 0
        self.state: dict[str, dict[str, torch.Tensor]] = {n: {} for n in params}
        first = next(iter(params.values()))
        self.momentum = torch.tensor(momentum, dtype=first.dtype, device=first.device)

    def _rows(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``(K,)`` -> ``(K, 1, ...)`` broadcasting against ``like``."""
        return t.reshape((self.k,) + (1,) * (like.dim() - 1))

    @staticmethod
    def _zeros(st: dict[str, torch.Tensor], key: str, like: torch.Tensor) -> torch.Tensor:
        if key not in st:
            st[key] = torch.zeros_like(like)
        return st[key]

    @torch.no_grad()
    def step(self, lrs: list[float]) -> None:
        """Update every row ``k`` with learning rate ``lrs[k]`` from the stacked ``.grad``."""
        self.steps += 1
        same_lr = all(lr == lrs[0] for lr in lrs)
        for n, p in self.params.items():
            g = p.grad
            if g is None:
                continue
            st = self.state[n]
            if self.name == "adam":
                self._adam(p, g, st, lrs, same_lr)
                continue
            if self.name == "adadelta":
                sq, acc = self._zeros(st, "square_avg", p), self._zeros(st, "acc_delta", p)
                sq.mul_(RHO).addcmul_(g, g, value=1 - RHO)
                std = sq.add(ADADELTA_EPS).sqrt_()
                delta = acc.add(ADADELTA_EPS).sqrt_().div_(std).mul_(g)
                acc.mul_(RHO).addcmul_(delta, delta, value=1 - RHO)
                g = delta
            elif self.name == "momentum":
                buf = st.get("momentum_buffer")
                if buf is None:
                    st["momentum_buffer"] = g = g.detach().clone()
                else:
                    g = buf.mul_(self._rows(self.momentum, buf)).add_(g)
            if same_lr:
                p.add_(g, alpha=-lrs[0])
            else:
                for k, lr in enumerate(lrs):
                    p[k].add_(g[k], alpha=-lr)

    def _adam(self, p: torch.Tensor, g: torch.Tensor, st: dict[str, torch.Tensor],
              lrs: list[float], same_lr: bool) -> None:
        b1, b2 = BETAS
        m, v = self._zeros(st, "exp_avg", p), self._zeros(st, "exp_avg_sq", p)
        m.lerp_(g, 1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        t = float(self.steps)  # torch keeps the step as a float32 tensor; its value is exact
        bc1, bc2_sqrt = 1 - b1 ** t, (1 - b2 ** t) ** 0.5
        denom = (v.sqrt() / bc2_sqrt).add_(ADAM_EPS)
        if same_lr:
            p.addcdiv_(m, denom, value=-(lrs[0] / bc1))
        else:
            for k, lr in enumerate(lrs):
                p[k].addcdiv_(m[k], denom[k], value=-(lr / bc1))

    def load_into(self, k: int, opt: torch.optim.Optimizer, names: list[str], lr: float) -> None:
        """Give the torch optimizer ``opt`` (over the params ``names``, in order) row k's state."""
        group = opt.param_groups[0]
        group["lr"] = lr
        if self.name == "momentum":
            group["momentum"] = float(self.momentum[k])
        for n, p in zip(names, group["params"], strict=True):
            st = self.state[n]
            if self.name in ("adam", "adadelta") and st:
                state = {"step": torch.tensor(float(self.steps))}
                state.update({key: v[k].clone() for key, v in st.items()})
                opt.state[p] = state
            elif self.name == "momentum" and "momentum_buffer" in st:
                opt.state[p] = {"momentum_buffer": st["momentum_buffer"][k].clone()}
