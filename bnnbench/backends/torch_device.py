"""Device helpers shared by the torch-based backends (Pyro, torch-ml)."""

from __future__ import annotations

import torch

__all__ = ["peak_memory_mb", "synchronize"]


def synchronize(device: torch.device) -> None:
    """Wait until ``device`` has finished all queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device: torch.device) -> float | None:
    """Peak memory torch allocated on the GPU in this process (``None`` on the CPU)."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20
