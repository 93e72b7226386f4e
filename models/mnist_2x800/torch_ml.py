"""``mnist_2x800`` as a plain PyTorch network: the deterministic baseline (maximum likelihood)."""

from __future__ import annotations

import torch
from torch import nn

from bnnbench.models.mnist_2x800.spec import LAYERS

__all__ = ["Network"]


class Network(nn.Module):
    """784 -> 800 -> 800 -> 10 tanh; ``nn.Linear`` layers (PyTorch's default initialisation),
    exposed under the spec's site names with the spec's (in, out) layout."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(n_in, n_out) for _, _, n_in, n_out in LAYERS)

    def named_site_tensors(self) -> dict[str, torch.Tensor]:
        """Spec name -> tensor view in the spec's layout (nn.Linear stores weights (out, in))."""
        sites = {}
        for (w, b, _, _), layer in zip(LAYERS, self.layers, strict=True):
            sites[w], sites[b] = layer.weight.T, layer.bias
        return sites

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Logits, (n, 10)."""
        h = X
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = torch.tanh(h)
        return h
