"""``mnist_2x800_hier``'s baseline: without priors, maximum likelihood has no scales to learn, so
the deterministic network is ``mnist_2x800``'s."""

from bnnbench.models.mnist_2x800.torch_ml import Network

__all__ = ["Network"]
