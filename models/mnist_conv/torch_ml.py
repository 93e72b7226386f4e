"""``mnist_conv`` as a plain PyTorch network: the deterministic baseline (maximum likelihood)."""

from __future__ import annotations

import torch
from torch import nn

from bnnbench.models.mnist_conv.spec import CHANNELS, IMAGE, KERNEL, N_DENSE, N_FLAT

__all__ = ["Network"]


class Network(nn.Module):
    """2 x (conv 32 5x5, tanh, maxpool 2x2), dense 256 tanh, dense 10; NCHW / OIHW as the spec."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(IMAGE[0], CHANNELS, KERNEL),
            nn.Tanh(),
            nn.MaxPool2d(2),
            nn.Conv2d(CHANNELS, CHANNELS, KERNEL),
            nn.Tanh(),
            nn.MaxPool2d(2),
        )
        self.dense = nn.Linear(N_FLAT, N_DENSE)
        self.out = nn.Linear(N_DENSE, 10)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Logits, (n, 10)."""
        a = self.features(X.reshape(-1, *IMAGE))
        return self.out(torch.tanh(self.dense(a.flatten(1))))
