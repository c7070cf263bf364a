"""K networks of one architecture as one function: stacked parameters, ``vmap(functional_call)``.

:class:`StackedNets` holds the parameters of K equal-shaped ``nn.Module`` s as ``(K, *shape)``
tensors (``torch.func.stack_module_state``) and runs them on ``(K, B, ...)`` inputs (or one
shared ``(B, ...)`` input, as in evaluation) with ``torch.func.vmap`` over
``torch.func.functional_call`` of a template copy of the first net, or, for sequential nets
of convolutions, pools, activations and FC layers, with grouped ops
(:mod:`cnnlab.training.batched_grouped`: the same sums without vmap's layout copies).

Dropout: ``torch.nn.Dropout`` on a CPU draws ``bernoulli_(1 - p)`` on a tensor shaped like its
input from the global generator and multiplies by the mask over ``1 - p``. The template's
dropout layers are :class:`MaskDropout`, which multiply by a mask passed in with the
parameters; :meth:`StackedNets.draw_masks` draws model k's masks from model k's own generator,
layer by layer in forward order, exactly as ``train()`` draws them for that model alone.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from cnnlab.data.datasets import Dataset
from cnnlab.training import batched_grouped as grouped
from cnnlab.training.optim import fc_layers


class MaskDropout(nn.Module):
    """Dropout whose scaled keep mask (``bernoulli(1-p) / (1-p)``) is the buffer ``mask``.

    With an empty mask in training it passes its input through and records the input's shape
    (the probe that tells :class:`StackedNets` which masks to draw).
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mask", torch.empty(0), persistent=False)
        self.shape: tuple[int, ...] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        if self.mask.numel() == 0:
            self.shape = tuple(x.shape)
            return x
        return x * self.mask


def _dropouts(net: nn.Module) -> list[tuple[str, float]]:
    return [(n, float(m.p)) for n, m in net.named_modules() if isinstance(m, nn.Dropout)]


def structure(net: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """Parameter and buffer names with shapes, plus dropout positions: equal for stackable nets."""
    out = [(n, tuple(t.shape)) for n, t in [*net.named_parameters(), *net.named_buffers()]]
    return out + [(n, ()) for n, _ in _dropouts(net)]


class StackedNets:
    """K nets of one structure. ``params``/``buffers``: name -> ``(K, *shape)`` tensors."""

    def __init__(self, nets: list[nn.Module], x_probe: torch.Tensor):
        ref = structure(nets[0])
        if any(structure(n) != ref for n in nets[1:]):
            raise ValueError("StackedNets: the nets differ in structure")
        self.k = len(nets)
        self.params, self.buffers = stack_module_state(nets)  # type: ignore[arg-type]
        self.names = [n for n, _ in nets[0].named_parameters()]
        self.template = copy.deepcopy(nets[0]).to("meta")
        # per model: [(layer, p)] in module order; forward order is found by the probe below
        self.drop_p = [dict(_dropouts(n)) for n in nets]
        for name, _ in _dropouts(nets[0]):
            parent, _, leaf = name.rpartition(".")
            self.template.get_submodule(parent).register_module(leaf, MaskDropout())
        self.drop_layers: list[str] = []
        self._probe(x_probe)
        fc = {id(m) for m in fc_layers(nets[0])}
        self.steps = grouped.plan(self.template) if not self.buffers else None
        self.force_vmap = False  # tests compare the two paths
        self.fc_names = [f"{mn}.{pn}" if mn else pn for mn, m in nets[0].named_modules()
                         if id(m) in fc for pn, p in m.named_parameters(recurse=False)
                         if p is not None]

    def _probe(self, x: torch.Tensor) -> None:
        order: list[str] = []
        hooks = []
        for name, m in self.template.named_modules():
            if isinstance(m, MaskDropout):
                hooks.append(m.register_forward_hook(
                    lambda mod, inp, out, name=name: order.append(name)))
        self.template.train()
        with torch.no_grad():
            row = {n: t[0] for n, t in self.params.items()}
            bufs = {n: t[0].clone() for n, t in self.buffers.items()}
            functional_call(self.template, (row, bufs), (x,))
        for h in hooks:
            h.remove()
        self.drop_layers = order
        self.drop_shapes = {n: self.template.get_submodule(n).shape for n in order}

    def draw_masks(self, gens: list[torch.Generator]) -> dict[str, list[torch.Tensor]]:
        """Each model's scaled dropout masks for one step: layer -> K masks shaped like one
        model's input to that layer, drawn model by model, layer by layer in forward order."""
        rows: dict[str, list[torch.Tensor]] = {n: [] for n in self.drop_layers}
        dev = next(iter(self.params.values())).device
        for k, g in enumerate(gens):
            for n in self.drop_layers:
                p = self.drop_p[k][n]
                shape = self.drop_shapes[n]
                if p == 0:  # torch's dropout returns its input without drawing
                    rows[n].append(torch.ones(shape, device=dev))
                    continue
                mask = torch.empty(shape, device=dev).bernoulli_(1 - p, generator=g)
                rows[n].append(mask.div_(1 - p))
        return rows

    def forward(self, x: torch.Tensor, masks: dict[str, list[torch.Tensor]] | None = None,
                shared_x: bool = False) -> torch.Tensor:
        """``(K, B, ...)`` inputs (or ``(B, ...)`` with ``shared_x``) -> ``(K, B, outputs)``;
        ``masks`` from :meth:`draw_masks` (training) or None (evaluation)."""
        if self.steps is not None and not self.force_vmap:
            return grouped.forward(self.steps, self.params, self.k, x, masks, shared_x)

        def one(p: dict, b: dict, xi: torch.Tensor) -> torch.Tensor:
            return functional_call(self.template, (p, b), (xi,)).flatten(1)

        stacked = {f"{n}.mask": torch.stack(v) for n, v in (masks or {}).items()}
        bufs = {**self.buffers, **stacked}
        return vmap(one, in_dims=(0, 0, None if shared_x else 0))(self.params, bufs, x)

    def train(self, mode: bool = True) -> None:
        self.template.train(mode)

    def l2_raw(self) -> torch.Tensor:
        """``(K,)``: each model's ``sum W^2 + sum b^2`` over its FC layers (ETH's L2)."""
        return torch.stack([self.params[n].pow(2).flatten(1).sum(1)
                            for n in self.fc_names]).sum(0)

    @torch.no_grad()
    def copy_into(self, k: int, net: nn.Module) -> None:
        """Write model k's parameters and buffers into ``net`` (to log, checkpoint or save)."""
        for n, p in net.named_parameters():
            p.copy_(self.params[n][k])
        for n, b in net.named_buffers():
            if n in self.buffers:
                b.copy_(self.buffers[n][k])


def stacked_loss(out: torch.Tensor, y: torch.Tensor, ds: Dataset, label_smoothing: torch.Tensor
                 | None = None, reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
    """Per model: cross-entropy (mean over heads, as :func:`engine.loss_and_correct`) and the
    number of correct examples, both ``(K,)``.

    ``out``: ``(K, B, heads*C)``; ``y``: ``(K, B)`` or ``(K, B, heads)`` (or without K:
    shared targets). ``label_smoothing``: ``(K,)``, torch's formula
    ``(1-s) * nll + s/C * sum_c(-log p_c)``. ``reduction="sum"`` sums over the batch.
    """
    k, n = out.shape[:2]
    c, heads = ds.num_classes, ds.heads
    logp = torch.log_softmax(out.reshape(k, n, heads, c).float(), -1)
    target = y.reshape(-1, n, heads).expand(k, n, heads)
    nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    loss = nll.sum((1, 2)) / heads if reduction == "sum" else nll.mean((1, 2))
    if label_smoothing is not None and bool((label_smoothing != 0).any()):
        smooth = -logp.sum(-1)
        smooth = smooth.sum((1, 2)) / heads if reduction == "sum" else smooth.mean((1, 2))
        loss = (1 - label_smoothing) * loss + smooth * (label_smoothing / c)
    pred = logp.argmax(-1)
    ok = pred.sum(-1) == target.sum(-1) if ds.score == "sum" else (pred == target).all(-1)
    return loss, ok.sum(-1)
