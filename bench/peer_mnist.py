"""The peer: pytorch/examples ``mnist/main.py`` as published, shared by the speed benchmarks.

Its network (two 3x3 convs, max-pool, dropout, fc128), a DataLoader over per-sample tensors
normalised per item (like torchvision's ``ToTensor`` + ``Normalize((0.1307,), (0.3081,))``),
Adadelta lr=1.0 with StepLR gamma 0.7, batch 64.
"""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.data.datasets import load


class PeerNet(nn.Module):
    """pytorch/examples mnist/main.py's Net, layer for layer."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.dropout1(F.max_pool2d(x, 2))
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return F.log_softmax(self.fc2(self.dropout2(x)), dim=1)


class PerSample(torch.utils.data.Dataset):
    """Like torchvision's MNIST + ToTensor + Normalize((0.1307,), (0.3081,)): one item at a time."""

    def __init__(self, images_u8: torch.Tensor, labels: torch.Tensor):
        self.x, self.y = images_u8, labels

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        img = self.x[i].to(torch.float32).div(255.0)
        return (img - 0.1307) / 0.3081, int(self.y[i])


def load_mnist():
    return load("mnist")


def loaders(ds, seed: int):
    torch.manual_seed(seed)
    to_u8 = lambda x: (x * 255).round().to(torch.uint8)  # noqa: E731
    train_loader = torch.utils.data.DataLoader(PerSample(to_u8(ds.x_train), ds.y_train),
                                               batch_size=64, shuffle=True)
    test_loader = torch.utils.data.DataLoader(PerSample(to_u8(ds.x_test), ds.y_test),
                                              batch_size=1000)
    return train_loader, test_loader


def test_accuracy(model: nn.Module, test_loader) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for data, target in test_loader:
            correct += int((model(data).argmax(1) == target).sum())
            total += len(target)
    return correct / total


def train_fixed(ds, seed: int, epochs: int) -> tuple[float, float]:
    """Fixed schedule: ``epochs`` epochs, one test evaluation at the end.
    Returns (training seconds, test accuracy)."""
    train_loader, test_loader = loaders(ds, seed)
    model = PeerNet()
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    t = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for data, target in train_loader:
            opt.zero_grad()
            F.nll_loss(model(data), target).backward()
            opt.step()
        sched.step()
    spent = time.perf_counter() - t
    return spent, test_accuracy(model, test_loader)
