"""The :class:`Dataset` every loader returns: train and test tensors on one device."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch


@dataclass
class Dataset:
    """Train and test tensors on one device.

    ``y`` is ``(N,)`` class indices, or ``(N, heads)`` for multi-head tasks (two digits).
    ``score`` says how accuracy is counted: ``"class"`` (all heads right) or ``"sum"`` (the
    predicted digits sum to the true sum, HUJI 5.2).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    heads: int = 1
    score: str = "class"
    classes: tuple[str, ...] = ()
    info: dict[str, object] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def with_train(self, x: torch.Tensor, y: torch.Tensor, **info: object) -> Dataset:
        return replace(self, x_train=x, y_train=y, info={**self.info, **info})

    def to(self, device: torch.device | str) -> Dataset:
        return replace(self, x_train=self.x_train.to(device), y_train=self.y_train.to(device),
                       x_test=self.x_test.to(device), y_test=self.y_test.to(device))
