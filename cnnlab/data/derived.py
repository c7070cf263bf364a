"""Datasets derived from a base one: stratified subsets, a validation split, two-digit pairs.

All work on the tensors already on the device (index arithmetic, no per-sample Python) and
are seeded, so a run's data is a function of its config.
"""

from __future__ import annotations

import torch

from cnnlab.common.errors import CnnlabError
from cnnlab.data.dataset import Dataset


def _strata(y: torch.Tensor) -> torch.Tensor:
    """One stratum label per example: the class, or the sum for two-digit labels."""
    return y if y.dim() == 1 else y.sum(dim=1)


def stratified_indices(y: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` indices whose class counts are proportional to ``y``'s (largest remainders).

    HUJI 4.1 trains on "a reduced set of only 250 examples"; stratifying keeps all ten digits
    present in it (25 each on MNIST's near-uniform classes).
    """
    total = y.shape[0]
    if not 0 < n <= total:
        raise CnnlabError(f"subset size {n} must be between 1 and {total}")
    key = _strata(y).cpu()
    classes, counts = torch.unique(key, return_counts=True)
    exact = counts.double() * n / total
    quota = exact.floor().long()
    short = n - int(quota.sum())
    if short:
        order = torch.argsort(exact - quota.double(), descending=True, stable=True)
        quota[order[:short]] += 1
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c, q in zip(classes.tolist(), quota.tolist(), strict=True):
        members = torch.nonzero(key == c).flatten()
        picks.append(members[torch.randperm(len(members), generator=g)[:q]])
    idx = torch.cat(picks)
    return idx[torch.randperm(len(idx), generator=g)].to(y.device)


def subset(ds: Dataset, n: int, seed: int = 0) -> Dataset:
    """The dataset with a stratified subset of ``n`` training examples (test set unchanged)."""
    idx = stratified_indices(ds.y_train, n, seed)
    return ds.with_train(ds.x_train[idx], ds.y_train[idx], train_size=n)


def validation_split(ds: Dataset, size: int, seed: int = 0) -> Dataset:
    """Hold out ``size`` stratified training examples as the evaluation set (a dev set).

    The test set is not touched: ETH asks "how far can you get the accuracy on the dev set",
    which is model selection and must not look at test data.
    """
    n = ds.y_train.shape[0]
    if not 0 < size < n:
        raise CnnlabError(f"--validation {size}: must be between 1 and {n - 1} (the training "
                          f"set has {n} examples and some must remain to train on)")
    val = stratified_indices(ds.y_train, size, seed)
    keep = torch.ones(n, dtype=torch.bool, device=ds.y_train.device)
    keep[val] = False
    out = ds.with_train(ds.x_train[keep], ds.y_train[keep], validation_size=size)
    out.x_test, out.y_test = ds.x_train[val], ds.y_train[val]
    out.info["eval_split"] = "validation"
    return out


def make_pairs(x: torch.Tensor, y: torch.Tensor, seed: int,
               layout: str = "h") -> tuple[torch.Tensor, torch.Tensor]:
    """Pair every image with a seeded random partner: ``(N, 1, 28, 56)`` side by side
    (``layout='h'``) or ``(N, 1, 56, 28)`` stacked (``'v'``); labels ``(N, 2)`` (both digits).
    """
    if layout not in ("h", "v"):
        raise CnnlabError(f"pair layout must be 'h' (side by side) or 'v' (stacked), not "
                          f"{layout!r}")
    g = torch.Generator().manual_seed(seed)
    partner = torch.randperm(x.shape[0], generator=g).to(x.device)
    images = torch.cat([x, x[partner]], dim=3 if layout == "h" else 2)
    return images, torch.stack([y, y[partner]], dim=1)


def pairs(base: Dataset, target: str = "sum", layout: str = "h", seed: int = 0) -> Dataset:
    """HUJI 5: two MNIST digits in one image; ``target`` 'sum' (19 classes, 5.1) or 'digits'
    (two 10-way heads, 5.2, scored by whether the predicted digits sum to the true sum).
    """
    if base.heads != 1:
        raise CnnlabError("pairs need a single-label base dataset")
    x_tr, y_tr = make_pairs(base.x_train, base.y_train, seed, layout)
    x_te, y_te = make_pairs(base.x_test, base.y_test, seed + 1, layout)
    name = f"{base.name}-pairs-{target}"
    info = {**base.info, "layout": layout, "pair_seed": seed}
    if target == "sum":
        return Dataset(name, x_tr, y_tr.sum(1), x_te, y_te.sum(1), 2 * base.num_classes - 1,
                       classes=tuple(str(i) for i in range(2 * base.num_classes - 1)),
                       info=info)
    if target == "digits":
        return Dataset(name, x_tr, y_tr, x_te, y_te, base.num_classes, heads=2, score="sum",
                       classes=base.classes, info=info)
    raise CnnlabError(f"pair target must be 'sum' or 'digits', not {target!r}")
