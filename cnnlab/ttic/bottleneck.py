"""TTIC Problem 3: the bottleneck residual MLP with a multiplier gamma, measured.

The sheet's network (``L`` layers counting the input layer ``L_1``, so ``L - 1`` blocks)::

    Lt_l  = ReLU(W1_l L_l - B1_l)        (N_bottle units)
    Lh_l  = ReLU(W2_l Lt_l - B2_l)       (N units)
    L_l+1 = gamma (L_l + Lh_l)

is the spec ``fcN res(gamma=G){fcNb relu fcN relu}*(L-1) fc10`` on flattened MNIST (the first
``fcN`` makes ``L_1``, ``fc10`` is the classifier). The claims checked here:

* (a) the stack does ``2 N N_bottle (L-1)`` multiplications, a plain MLP ``N^2 (L-1)``;
* (b) with independent zero-mean unit-variance ``L_l`` and ``Lh_l``, ``gamma = 1/sqrt2`` keeps
  unit variance (``Var L_l+1 = gamma^2 (1 + 1) = 1``);
* (c) the bottom block's gradient is reduced by ``gamma^(L-2)`` (the direct path from the top
  passes ``L-2`` multipliers above the bottom block's output ``L_2``).

Every function returns a dataclass of measured numbers; plots live in :mod:`cnnlab.ttic.plots`.
:func:`probe_replay` re-runs a finished run of the ``ttic_bottleneck`` recipe with its first
and last blocks watched (the recipe's ``[measure] kind = "bottleneck"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from cnnlab.analysis.analyze import analyze_graph
from cnnlab.analysis.hook_count import hook_macs
from cnnlab.ir.spec import parse
from cnnlab.models.build import build

if TYPE_CHECKING:
    from cnnlab.training.trainer import TrainConfig


def bottleneck_spec(depth: int, width: int, bottleneck: int, gamma: float = 1.0,
                    classes: int | None = 10) -> str:
    """The sheet's network as a spec; ``classes=None`` leaves out the input fc and the head
    (the residual stack alone, acting on ``L_1``)."""
    block = f"res(gamma={gamma!r}){{fc{bottleneck} relu fc{width} relu}}*{depth - 1}"
    if classes is None:
        return block
    return f"fc{width} {block} fc{classes}"


def plain_spec(depth: int, width: int, classes: int = 10) -> str:
    """The standard MLP of Problem 3(a): one ``N x N`` matrix between consecutive layers."""
    return f"fc{width} " + f"fc{width} relu " * (depth - 1) + f"fc{classes}"


@dataclass
class MacsReport:
    """Multiplications of the ``L - 1`` matrices between ``L_1`` and ``L_L`` (input fc, head
    and the gamma multiplies reported separately)."""

    depth: int
    width: int
    bottleneck: int
    formula_bottleneck: int
    formula_plain: int
    analyzer_bottleneck: int
    analyzer_plain: int
    hook_bottleneck: int
    hook_plain: int
    gamma_multiplies: int
    analyzer_total: int

    @property
    def bottleneck_cheaper(self) -> bool:
        return self.analyzer_bottleneck < self.analyzer_plain


def _stack_macs(spec_: str, input_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(analyzer MACs of the inner fc layers, hook count of them, gamma multiplies, total)."""
    graph = parse(spec_)
    a = analyze_graph(graph, input_shape)
    fcs = [r for r in a.layers if r.kind == "linear"]
    inner = {r.name for r in fcs[1:-1]}
    analyzer = sum(r.macs or 0 for r in fcs[1:-1])
    gammas = sum(r.macs or 0 for r in a.layers if r.kind == "add")
    net = build(graph, input_shape, seed=0).eval()
    counts = hook_macs(net, torch.zeros(1, *input_shape))
    hooks = sum(v for k, v in counts.items() if k.split(".")[1] in inner)
    return analyzer, hooks, gammas, a.total.macs


def macs_report(depth: int, width: int, bottleneck: int, gamma: float = 2 ** -0.5,
                input_shape: tuple[int, ...] = (1, 28, 28)) -> MacsReport:
    """Problem 3(a): formula vs analyzer vs forward-hook count, bottleneck and plain."""
    ab, hb, gam, total = _stack_macs(bottleneck_spec(depth, width, bottleneck, gamma),
                                     input_shape)
    ap, hp, _, _ = _stack_macs(plain_spec(depth, width), input_shape)
    return MacsReport(depth, width, bottleneck, 2 * width * bottleneck * (depth - 1),
                      width * width * (depth - 1), ab, ap, hb, hp, gam, total)


@dataclass
class InitStats:
    """Per layer ``L_1 .. L_L``: mean and variance over units and samples at initialization;
    ``branch_*`` the same for ``Lh_1 .. Lh_{L-1}``."""

    gamma: float
    branch: str
    mean: list[float]
    var: list[float]
    branch_mean: list[float] = field(default_factory=list)
    branch_var: list[float] = field(default_factory=list)


def init_statistics(depth: int, gamma: float, width: int = 256, bottleneck: int = 64,
                    branch: str = "synthetic", samples: int = 4096,
                    seed: int = 0) -> InitStats:
    """Activation statistics with ``L_1 ~ N(0, 1)``.

    ``branch="synthetic"``: ``Lh_l`` is fresh independent N(0, 1) noise -- exactly the sheet's
    assumption in (b). ``branch="relu"``: the real ReLU branch of the spec-built stack at
    PyTorch's default init (its outputs are non-negative, so neither zero-mean nor
    independent of ``L_l``; this shows how far the assumption is from the network).
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, width, generator=g, dtype=torch.float64)
    layers, branches = [x], []
    if branch == "synthetic":
        for _ in range(depth - 1):
            h = torch.randn(samples, width, generator=g, dtype=torch.float64)
            branches.append(h)
            layers.append(gamma * (layers[-1] + h))
    elif branch == "relu":
        graph = parse(bottleneck_spec(depth, width, bottleneck, gamma, classes=None))
        net = build(graph, (width,), seed=seed).double().eval()
        adds = [n for n in graph.nodes if n.op.kind == "add"]
        outs: dict[str, torch.Tensor] = {}
        handles = [net.layers[n].register_forward_hook(
            lambda m, i, o, name=n: outs.__setitem__(name, o)) for n in
            [a.name for a in adds] + [a.inputs[1] for a in adds]]
        with torch.no_grad():
            net(x)
        for h in handles:
            h.remove()
        layers += [outs[a.name] for a in adds]
        branches = [outs[a.inputs[1]] for a in adds]
    else:
        raise ValueError(f"branch must be 'synthetic' or 'relu', not {branch!r}")
    return InitStats(gamma, branch, [float(t.mean()) for t in layers],
                     [float(t.var()) for t in layers], [float(t.mean()) for t in branches],
                     [float(t.var()) for t in branches])


@dataclass
class GradDepth:
    """Gradient norm of the bottom block's parameters against depth ``L``.

    ``slope`` is the least-squares slope of ``log(norm)`` against ``L``; the sheet predicts
    ``log(gamma)`` (each extra layer multiplies the direct path by gamma).
    """

    gamma: float
    mode: str
    depths: list[int]
    grad_norms: list[float]
    slope: float

    @property
    def log_gamma(self) -> float:
        return math.log(self.gamma)

    @property
    def ratios(self) -> list[float]:
        """``norm(L) / norm(2)``: the sheet's ``gamma^(L-2)`` for the bottom block."""
        return [v / self.grad_norms[0] for v in self.grad_norms]


def _linears(net: nn.Module) -> list[nn.Linear]:
    return [m for m in net.modules() if isinstance(m, nn.Linear)]


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` against ``xs``."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    num = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return num / sum((x - mx) ** 2 for x in xs)


def grad_vs_depth(depths: Sequence[int], gamma: float, width: int = 256, bottleneck: int = 64,
                  mode: str = "linear", batch: int = 256, seed: int = 0) -> GradDepth:
    """Bottom-block gradient norm for each depth, same bottom block and input throughout.

    The loss is ``sum(c * L_L)`` with a fixed random ``c``, so the gradient arriving at the
    top is the same for every depth. ``mode="linear"``: blocks above the bottom one output 0
    (their second matrix and threshold are zero), so ``L_L = gamma^(L-2) L_2`` exactly and
    the ratio is exactly ``gamma^(L-2)`` -- the sheet's "direct additive path" in isolation.
    ``mode="init"``: every block as initialized; the branches add paths of their own.
    """
    depths = sorted(depths)
    deepest = build(parse(bottleneck_spec(depths[-1], width, bottleneck, gamma, None)),
                    (width,), seed=seed).double()
    ref = _linears(deepest)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, width, generator=g, dtype=torch.float64)
    c = torch.randn(batch, width, generator=g, dtype=torch.float64)
    norms = []
    for depth in depths:
        net = build(parse(bottleneck_spec(depth, width, bottleneck, gamma, None)),
                    (width,)).double()
        lin = _linears(net)
        with torch.no_grad():
            for mine, theirs in zip(lin, ref, strict=False):
                mine.weight.copy_(theirs.weight)
                mine.bias.copy_(theirs.bias)
            if mode == "linear":
                for second in lin[3::2]:
                    second.weight.zero_()
                    second.bias.zero_()
            elif mode != "init":
                raise ValueError(f"mode must be 'linear' or 'init', not {mode!r}")
        (net(x) * c).sum().backward()
        bottom = [p.grad for m in lin[:2] for p in (m.weight, m.bias)]
        norms.append(float(torch.sqrt(sum((t ** 2).sum() for t in bottom))))
    return GradDepth(gamma, mode, list(depths), norms,
                     slope(list(depths), [math.log(v) for v in norms]))


@dataclass
class TrainProbe:
    """One training run of ``bottleneck-mlp`` with the first and last block watched.

    Per probed step: gradient norm of the block's parameters and the relative update
    ``||theta_after - theta_before|| / ||theta_before||`` the optimizer applied.
    """

    gamma: float
    depth: int
    optimizer: str
    steps: list[int]
    first_grad: list[float]
    last_grad: list[float]
    first_update: list[float]
    last_update: list[float]
    train_acc: float
    test_acc: float
    test_loss: float
    wall_time: float

    @staticmethod
    def _mean(v: list[float]) -> float:
        return sum(v) / len(v) if v else math.nan

    @property
    def grad_ratio(self) -> float:
        """Mean over probed steps of first-block / last-block gradient norm."""
        return self._mean([a / b for a, b in zip(self.first_grad, self.last_grad, strict=True)
                           if b > 0])

    @property
    def update_ratio(self) -> float:
        return self._mean([a / b for a, b in
                           zip(self.first_update, self.last_update, strict=True) if b > 0])


def _norm(ts: list[torch.Tensor]) -> float:
    return float(torch.sqrt(sum((t.detach().float() ** 2).sum() for t in ts)))


def train_probe(gamma: float, depth: int, width: int = 256, bottleneck: int = 64,
                iterations: int = 300, optimizer: str = "sgd", lr: float = 0.05,
                batch_size: int = 64, probe_every: int = 10, dataset: str = "mnist",
                data_dir: str | None = None, train_size: int | None = None, seed: int = 0,
                threads: int | None = 1) -> TrainProbe:
    """:func:`probe_run` of the ``bottleneck-mlp`` config these arguments describe."""
    from cnnlab.training.trainer import TrainConfig

    cfg = TrainConfig(model="bottleneck-mlp", dataset=dataset, data_dir=data_dir,
                      model_opts=f"depth={depth},width={width},bottleneck={bottleneck},"
                                 f"gamma={gamma!r}",
                      optimizer=optimizer, lr=lr, batch_size=batch_size, iterations=iterations,
                      train_size=train_size, seed=seed, device="cpu", tensorboard=False,
                      plots=False, progress="off", threads=threads)
    return probe_run(cfg, probe_every)


def probe_run(cfg: TrainConfig, probe_every: int = 10) -> TrainProbe:
    """Train ``cfg`` (a ``bottleneck-mlp`` config) through the trainer's engine -- the same
    data preparation, model build, :class:`cnnlab.training.engine.Loop` and steps as
    :func:`cnnlab.training.trainer.train`, so the same trajectory as the run of ``cfg`` -- and
    probe the first and last residual blocks every ``probe_every`` steps (and at the last).

    Problem 3(c): with plain SGD the bottom block's gradient, hence its update, shrinks like
    ``gamma^(L-2)``; Adam divides by the gradient's running scale, so compare both. Nothing
    is written: the run folder of ``cfg`` stays as the executor left it.
    """
    import time

    from cnnlab.common.errors import CnnlabError
    from cnnlab.training.engine import Loop, evaluate, resolve_precision
    from cnnlab.training.trainer import build_model, model_options, prepare_data, resolve_device

    if cfg.spec or cfg.model != "bottleneck-mlp":
        raise CnnlabError(f"probe_run needs a bottleneck-mlp config, not "
                          f"{cfg.spec or cfg.model!r}")
    if probe_every < 1:
        raise CnnlabError(f"probe_every must be >= 1, got {probe_every}")
    opts = model_options(cfg)
    before_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        t0 = time.perf_counter()
        device = resolve_device(cfg.device)
        ds, mean, std = prepare_data(cfg, device)
        _, net = build_model(cfg, ds)
        steps_per_epoch = max(ds.x_train.shape[0] // cfg.batch_size, 1)
        if cfg.epochs is not None:
            total = max(1, math.ceil(cfg.epochs * steps_per_epoch))
        else:
            total = cfg.iterations if cfg.iterations is not None else 20000
        loop = Loop(cfg, ds, net, device, total, steps_per_epoch, fill=-mean / std)
        lin = _linears(net)
        blocks = {"first": lin[1:3], "last": lin[-3:-1]}
        params = {k: [p for m in v for p in m.parameters()] for k, v in blocks.items()}
        rec: dict[str, list[float]] = {k: [] for k in ("first_grad", "last_grad",
                                                       "first_update", "last_update")}
        steps = []
        for it in range(total):
            probe = it % probe_every == 0 or it == total - 1
            before = ({k: [p.detach().clone() for p in v] for k, v in params.items()}
                      if probe else {})
            loop.step(it)
            if probe:
                steps.append(it)
                for k, ps in params.items():
                    rec[f"{k}_grad"].append(_norm([p.grad for p in ps if p.grad is not None]))
                    delta = [p.detach() - b for p, b in zip(ps, before[k], strict=True)]
                    rec[f"{k}_update"].append(_norm(delta) / max(_norm(before[k]), 1e-30))
        bs, prec = cfg.eval_batch_size, resolve_precision(cfg.precision, device)
        tr_loss, tr_acc = evaluate(net, loop.x_tr_eval, loop.y_tr_eval, ds, bs, device, prec)
        te_loss, te_acc = evaluate(net, ds.x_test, ds.y_test, ds, bs, device, prec)
    finally:
        torch.set_num_threads(before_threads)
    return TrainProbe(float(opts.get("gamma", 1.0)), int(opts.get("depth", 8)), cfg.optimizer,
                      steps, rec["first_grad"], rec["last_grad"], rec["first_update"],
                      rec["last_update"], tr_acc, te_acc, te_loss, time.perf_counter() - t0)


def probe_replay(run_dir: str | Path, probes: int = 30) -> TrainProbe:
    """:func:`probe_run` of a finished run folder's saved ``config.json``, probing about
    ``probes`` times over the run (every ``max(iterations // probes, 1)`` steps)."""
    from cnnlab.common.files import read_json
    from cnnlab.training.trainer import TrainConfig

    folder = Path(run_dir)
    cfg = TrainConfig.from_dict(read_json(folder / "config.json"), where=str(folder))
    return probe_run(cfg, max((cfg.iterations or 20000) // max(probes, 1), 1))
