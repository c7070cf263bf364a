"""Which training configs may train together (:func:`batch_key`), and where it pays.

Used by :func:`cnnlab.training.batched.train_many` and the experiment executor's grouping.
"""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

import torch

from cnnlab.common.errors import CnnlabError
from cnnlab.models import zoo as models
from cnnlab.training.engine import resolve_precision
from cnnlab.training.trainer import RESULT_FREE_KEYS, TrainConfig, model_options, resolve_device

#: Fields that may differ inside a group (besides :data:`RESULT_FREE_KEYS`): each model's own.
PER_MODEL = frozenset({"seed", "lr", "momentum", "keep_prob", "l2", "label_smoothing",
                       "schedule", "warmup", "step_gamma", "out_name"})
#: The group is fixed by the architecture: these enter the key as the built model's layers.
_ARCH = frozenset({"model", "spec", "model_opts"})


def unsupported(cfg: TrainConfig) -> str | None:
    """Why ``cfg`` cannot train in a group (``train()`` trains it alone), or None."""
    device = resolve_device(cfg.device) if cfg.device != "cuda" else torch.device("cuda")
    why = {"augment": bool(cfg.augment), "target_acc": cfg.target_acc is not None,
           "compile": cfg.compile, "channels_last": cfg.channels_last == "on",
           "resume": cfg.resume, "batch_norm": cfg.batch_norm,
           "precision": resolve_precision(cfg.precision, device) != "fp32"}
    bad = [k for k, v in why.items() if v]
    return ", ".join(bad) if bad else None


def architecture(cfg: TrainConfig) -> str | None:
    """The model's layers with dropout rates blanked (they may differ per model), or None for
    models built by code (a factory) and models with batch norm."""
    try:
        mdef = models.resolve(cfg.spec or cfg.model, **model_options(cfg))
        if mdef.factory is not None:
            return None
        graph = mdef.graph()
    except CnnlabError:
        return None
    parts = []
    for node in graph.nodes:
        op = node.op
        if op.kind == "batchnorm":
            return None
        shown = "dropout" if op.kind == "dropout" else re.sub(r"\s+", " ", repr(op))
        parts.append(f"{node.name}<{','.join(node.inputs)}>:{shown}")
    return "; ".join(parts)


def batch_key(cfg: TrainConfig) -> tuple[Any, ...] | None:
    """Configs with equal keys can train together in :func:`train_many`; None: train alone.

    The key is the architecture (layers, dropout rates left out) and every field that is
    neither a model's own (:data:`PER_MODEL`) nor free of the result (``RESULT_FREE_KEYS``;
    ``threads`` and ``device`` are kept, the group shares them).
    """
    if unsupported(cfg):
        return None
    arch = architecture(cfg)
    if arch is None:
        return None
    skip = PER_MODEL | _ARCH | (RESULT_FREE_KEYS - {"threads", "device"})
    shared = tuple((f.name, repr(getattr(cfg, f.name))) for f in fields(cfg)
                   if f.name not in skip)
    return (arch, shared)


#: On a CPU, batching pays for models of at most this many multiply-adds per example
#: (docs/training.md, bench/bench_batched.py: small models train 1.1-1.4x faster together;
#: the HUJI baseline's 4.8 M gain 1.06x on whole short runs and nothing on its compute-bound
#: steps). On a GPU it always pays.
CPU_MAX_MACS = 3_000_000


def macs_per_example(cfg: TrainConfig) -> int | None:
    """Multiply-adds of one forward pass (the analyzer's count at the model's input shape;
    a spec string has none: MNIST's 1x28x28)."""
    from cnnlab.analysis.analyze import analyze_graph

    try:
        mdef = models.resolve(cfg.spec or cfg.model, **model_options(cfg))
        return analyze_graph(mdef.graph(), mdef.input_shape or (1, 28, 28)).total.macs
    except CnnlabError:
        return None


def batching_pays(cfg: TrainConfig) -> bool:
    """Whether ``cfg`` should train in a group: it has a :func:`batch_key`, and it runs on a
    GPU or its model is small enough (:data:`CPU_MAX_MACS`) for a CPU to gain."""
    if batch_key(cfg) is None:
        return False
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        return True
    macs = macs_per_example(cfg)
    return macs is not None and macs <= CPU_MAX_MACS


def group_configs(configs: list[TrainConfig], max_size: int = 8) -> list[list[int]]:
    """Indices of ``configs`` in groups of equal :func:`batch_key` (at most ``max_size`` each,
    first-seen order); a config without a key is a group of its own."""
    groups: dict[Any, list[list[int]]] = {}
    out: list[list[int]] = []
    for i, cfg in enumerate(configs):
        key = batch_key(cfg)
        if key is None:
            out.append([i])
            continue
        bucket = groups.get(key)
        if bucket is None or len(bucket[-1]) >= max_size:
            out.append([i])
            groups.setdefault(key, []).append(out[-1])
        else:
            bucket[-1].append(i)
    return out
