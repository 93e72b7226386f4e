"""``torch-ml``: the deterministic baseline, each spec's network trained by maximum likelihood.

Plain PyTorch (``models/<spec>/torch_ml.py``): Adam at the cell's learning rate, the same batch
size and steps as the Bayesian backends, minibatches drawn without replacement. Its loss is the
full-data negative log-likelihood estimate, N times the minibatch's mean cross-entropy, stored in
the ELBO columns (the ELBO of a point mass without prior or entropy terms). Its "posterior" is one
point, so its predictive has one draw.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from bnnbench.backends import torch_device
from bnnbench.config import CellConfig
from bnnbench.spec import Dataset, ModelSpec, backend_module

__all__ = ["TorchMLSession", "device_problem", "library_versions"]

#: This backend's entry in :mod:`bnnbench.registry` (read from the source, never imported there).
BACKEND = dict(
    name="torch-ml",
    order=3,
    bayesian=False,
    packages={"torch": "torch"},
    library="torch",
    runtime="torch",
    extra="torch-ml",
    color="#7f7f7f",
    model_file="torch_ml",
)


def library_versions() -> dict[str, str]:
    return {"torch": torch.__version__, "torch-runtime": torch.__version__}


def device_problem(device: str) -> str | None:
    if device == "gpu" and not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False)"
    return None


class TorchMLSession:
    """A network and its optimizer."""

    dtype = "float32"

    def __init__(self, spec: ModelSpec, data: Dataset, cfg: CellConfig) -> None:
        self.spec, self.cfg = spec, cfg
        self.device = torch.device("cuda" if cfg.device == "gpu" else "cpu")
        torch.manual_seed(cfg.seed)
        started = time.perf_counter()
        self.X = torch.as_tensor(data.X_train, dtype=torch.float32, device=self.device)
        self.y = torch.as_tensor(data.y_train, device=self.device)
        self.synchronize()
        #: Seconds to place the training data on the device.
        self.transfer_s = time.perf_counter() - started
        self.n_train = data.n_train
        self.network_cls = backend_module(spec.name, "torch-ml").Network
        self.binary = spec.n_classes == 2
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.execution_path = (
            f"torch eager, Adam, Python loop, losses synchronised once per "
            f"chunk, on {self.device.type}"
        )

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.binary:
            return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype))
        return F.cross_entropy(logits, y)

    def compile(self, chunk_sizes: set[int]) -> None:
        self.net = self.network_cls().to(self.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.cfg.learning_rate)

    def synchronize(self) -> None:
        """Wait until the device has finished all queued work."""
        torch_device.synchronize(self.device)

    def peak_device_memory_mb(self) -> float | None:
        """Peak memory torch allocated on the GPU in this process (``None`` on the CPU)."""
        return torch_device.peak_memory_mb(self.device)

    def run_steps(self, n_steps: int) -> np.ndarray:
        losses = torch.empty(n_steps, device=self.device)
        for i in range(n_steps):
            idx = torch.randperm(self.n_train, device=self.device, generator=self.generator)[
                : self.cfg.batch_size
            ]
            loss = self._loss(self.net(self.X[idx]), self.y[idx])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            losses[i] = loss.detach()
        return losses.cpu().numpy().astype(np.float64) * self.n_train

    def sample_posterior(self, draws: int, seed: int) -> dict[str, np.ndarray]:
        """The point estimate, as one draw (no parameter draws are stored for it)."""
        return {}

    @torch.no_grad()
    def predict(
        self, posterior: dict[str, np.ndarray], X: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        logits = self.net(torch.as_tensor(X, dtype=torch.float32, device=self.device))
        gen = torch.Generator(device=self.device).manual_seed(seed)
        if self.binary:
            proba = torch.sigmoid(logits)
            labels = torch.bernoulli(proba, generator=gen).long()
        else:
            proba = torch.softmax(logits, dim=-1)
            labels = torch.multinomial(proba, 1, generator=gen)[:, 0]
        return proba[None].cpu().numpy(), labels[None].cpu().numpy()


TrainingSession = TorchMLSession
