"""``moons_2x5`` as a plain PyTorch network: the deterministic baseline (maximum likelihood)."""

from __future__ import annotations

import torch
from torch import nn

from bnnbench.models.moons_2x5.spec import N_HIDDEN

__all__ = ["Network"]


class Network(nn.Module):
    """The spec's network; parameters carry the spec's site names and (in, out) layouts."""

    def __init__(self, n_input: int = 2) -> None:
        super().__init__()
        self.w_in_1 = nn.Parameter(torch.randn(n_input, N_HIDDEN))
        self.w_1_2 = nn.Parameter(torch.randn(N_HIDDEN, N_HIDDEN))
        self.w_2_out = nn.Parameter(torch.randn(N_HIDDEN))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Logits of p(y = 1 | x), (n,)."""
        return torch.tanh(torch.tanh(X @ self.w_in_1) @ self.w_1_2) @ self.w_2_out
